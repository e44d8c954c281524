import stat
from pathlib import Path

import pytest

from kindslurm import config, spec
from kindslurm.errors import SpecError


@pytest.fixture
def files(tmp_path: Path):
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\necho hi\n")
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec: {}\n")
    return script, manifest


def build(cfg=None, **kw):
    args = dict(mode="sbatch", script=None, script_args=[], manifests=[], name=None)
    args.update(kw)
    return spec.build(cfg or config.Config(), **args)


def test_valid_spec_round_trips_through_json(no_site_config, files):
    script, manifest = files
    s = build(script=str(script), manifests=[str(manifest)], script_args=["--x", "a b"])
    again = spec.JobSpec.from_json(s.to_json())
    assert again == s
    assert again.script == str(script.resolve()) and again.time_seconds == 3600


def test_nothing_to_run(no_site_config):
    with pytest.raises(SpecError, match="nothing to run"):
        build()


def test_missing_script(no_site_config, tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        build(script=str(tmp_path / "nope.sh"))


def test_bad_yaml_names_the_line(no_site_config, files, tmp_path):
    script, _ = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: [unclosed\n")
    with pytest.raises(SpecError, match=r"bad.yaml line \d+ is not valid YAML"):
        build(script=str(script), manifests=[str(bad)])


def test_manifest_without_kind(no_site_config, tmp_path):
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: v1\nmetadata: {name: x}\n")
    with pytest.raises(SpecError, match="lacks apiVersion or kind"):
        build(manifests=[str(m)])


def test_bad_time(no_site_config, files):
    with pytest.raises(SpecError, match="bad time limit"):
        build(config.Config(time="1h"), script=str(files[0]))


def test_bad_name(no_site_config, files):
    with pytest.raises(SpecError, match="not valid for kind"):
        build(script=str(files[0]), name="My_Cluster")


def test_bad_mount(no_site_config, files, tmp_path):
    with pytest.raises(SpecError, match="HOST_PATH:CONTAINER_PATH"):
        build(config.Config(extra_mounts=["/tmp"]), script=str(files[0]))
    with pytest.raises(SpecError, match="does not exist"):
        build(config.Config(extra_mounts=[f"{tmp_path}/none:/data"]), script=str(files[0]))


def test_kind_config_must_be_a_cluster(no_site_config, files, tmp_path):
    kc = tmp_path / "kind.yaml"
    kc.write_text("kind: Pod\n")
    with pytest.raises(SpecError, match="kind: Cluster"):
        build(config.Config(kind_config=str(kc)), script=str(files[0]))


def test_config_layers_and_unknown_keys(no_site_config, monkeypatch, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("node_image: site/img:1\ntime: '30'\ntools: {kind: /opt/kind}\n")
    user = tmp_path / "user.yaml"
    user.write_text("time: '45'\ntools: {podman: /opt/podman}\n")
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(site))
    monkeypatch.setenv("KINDSLURM_CONFIG", str(user))
    cfg = config.load({"cpus": 3, "time": None})
    assert (cfg.node_image, cfg.time, cfg.cpus) == ("site/img:1", "45", 3)
    assert cfg.tool("kind") == "/opt/kind" and cfg.tool("podman") == "/opt/podman" and cfg.tool("sbatch") == "sbatch"
    user.write_text("tiem: 5\n")
    with pytest.raises(SpecError, match="unknown key 'tiem'.*valid keys are"):
        config.load()


def test_missing_explicit_config(no_site_config, monkeypatch, tmp_path):
    monkeypatch.setenv("KINDSLURM_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(SpecError, match="does not exist"):
        config.load()


def test_state_records_are_private(no_site_config):
    from kindslurm import paths, state

    state.save(state.Record(run_id="r1", mode="local", user="u", job_dir="/x"))
    p = paths.records_dir() / "r1.json"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.records_dir().stat().st_mode) == 0o700
    state.update("r1", phase="creating", job_id="9")
    got = state.find("9")
    assert got is not None and got.phase == "creating" and "creating" in got.phases and got.live
    state.update("r1", phase="completed")
    assert not state.load("r1").live
    state.remove("r1")
    assert state.load("r1") is None and not list(paths.records_dir().iterdir())
