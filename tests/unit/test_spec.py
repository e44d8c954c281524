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
    from kindslurm import paths, records

    records.save(records.Record(run_id="r1", mode="local", user="u", job_dir="/x"))
    p = paths.records_dir() / "r1.json"
    assert stat.S_IMODE(p.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.records_dir().stat().st_mode) == 0o700
    records.update("r1", phase="creating", job_id="9")
    got = records.find("9")
    assert got is not None and got.phase == "creating" and "creating" in got.phases and got.live
    records.update("r1", phase="completed")
    assert not records.load("r1").live
    records.remove("r1")
    assert records.load("r1") is None and not list(paths.records_dir().iterdir())


# -- manifests are type-checked the way the node reads them -----------------

def manifest(tmp_path: Path, text: str, name: str = "m.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,expected", [
    ("apiVersion: v1\nkind: 5\nmetadata: {name: x}\n", r"document 1: kind must be a string \(got 5\): write e.g. kind: Job"),
    ("apiVersion: [v1]\nkind: Pod\nmetadata: {name: x}\n", r"apiVersion must be a string \(got \[.v1.\]\): write e.g. apiVersion: batch/v1"),
    ("apiVersion: v1\nkind: 2024-01-01\nmetadata: {name: x}\n", r"kind must be a string"),
    ("apiVersion: v1\nkind: Pod\nmetadata: foo\n", r"document 1 \(Pod\): metadata must be a mapping \(got 'foo'\): write metadata: \{name: NAME\}"),
    ("apiVersion: v1\nkind: Pod\nmetadata: [a]\n", r"metadata must be a mapping"),
    ("apiVersion: v1\nkind: Pod\nmetadata:\n", r"\(Pod\) has no metadata.name: add one"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: 5}\n", r"metadata.name must be a string \(got 5\): quote it"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: [a]}\n", r"metadata.namespace must be a string"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: [a]}\n", r"metadata.labels must be a mapping"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: x, labels: {v: 1.0}}\n", r"metadata.labels.v must be a string \(got 1.0\)"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nbinaryData: {b: !!binary aGk=}\n", r"binaryData.b is a YAML bytes"),
    ("- apiVersion: v1\n  kind: Pod\n", r"document 1 is \[.*\], not a Kubernetes object"),
    ("just text\n", r"document 1 is 'just text', not a Kubernetes object"),
    ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n42\n", r"document 2 is 42, not a Kubernetes object"),
    ("apiVersion: v1\nkind: List\nitems: foo\n", r"\(List\): items must be a list of objects \(got 'foo'\)"),
    ("apiVersion: v1\nkind: List\nitems: [foo]\n", r"document 1 item 1 is 'foo', not a Kubernetes object"),
    ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: 5}\n", r"item 1: kind must be a string"),
    ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: foo}\n", r"item 1 \(Pod\): metadata must be a mapping"),
    ("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod}\n", r"item 1 \(Pod\) has no metadata.name"),
])
def test_manifest_types_are_checked_with_one_line_naming_file_document_and_fix(no_site_config, tmp_path, text, expected):
    m = manifest(tmp_path, text)
    with pytest.raises(SpecError, match=expected) as info:
        build(manifests=[str(m)])
    assert str(m) in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("text", [
    "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
    "apiVersion: v1\nkind: List\nitems: []\n",
    "apiVersion: v1\nkind: Pod\nmetadata: {generateName: p-, labels: {a: 'b'}, annotations: {c: d}}\nspec: {}\n",
    "apiVersion: example.com/v1\nkind: AccessList\nmetadata: {name: a}\n",  # a CRD kind that merely ends in List
    "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: n}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
])
def test_valid_manifests_pass(no_site_config, tmp_path, text):
    assert spec.check_manifest(manifest(tmp_path, text)) >= 1


def test_manifest_that_is_not_utf8_is_a_spec_error(no_site_config, tmp_path):
    m = tmp_path / "bin.yaml"
    m.write_bytes(b"apiVersion: v1\nkind: \xff\xfe\n")
    with pytest.raises(SpecError, match="is not UTF-8 text"):
        build(manifests=[str(m)])


def test_kind_config_must_hold_one_document(no_site_config, files, tmp_path):
    kc = tmp_path / "kind.yaml"
    kc.write_text("kind: Cluster\n---\n")
    with pytest.raises(SpecError, match="kind config .* is not valid YAML"):
        build(config.Config(kind_config=str(kc)), script=str(files[0]))


def _yamlish():
    from hypothesis import strategies as st

    keys = st.sampled_from(["apiVersion", "kind", "metadata", "name", "generateName", "namespace", "labels",
                            "annotations", "items", "spec"]) | st.text(max_size=5)
    scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
               | st.sampled_from(["v1", "Pod", "List", "ConfigMapList", ""]))
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=6),
                        max_leaves=30)


def test_any_yaml_structure_gives_a_spec_error_or_passes(tmp_path):
    import yaml
    from hypothesis import given, settings, strategies as st

    @settings(max_examples=400, deadline=None)
    @given(st.lists(_yamlish(), min_size=1, max_size=3))
    def check(docs):
        text = yaml.safe_dump_all(docs)
        try:
            assert spec.check_manifest_text(text, Path("m.yaml")) >= 1
        except SpecError as e:
            assert "\n" not in str(e)

    check()


def test_any_text_gives_a_spec_error_or_passes():
    from hypothesis import given, settings, strategies as st

    tokens = list("ab5:-[]{}!&*|>'\"\n #,?%@`\t") + ["!!binary ", "!!set ", "kind: ", "apiVersion: ", "metadata: ", "---\n"]

    @settings(max_examples=400, deadline=None)
    @given(st.lists(st.sampled_from(tokens), max_size=40).map("".join))
    def check(text):
        try:
            spec.check_manifest_text(text, Path("m.yaml"))
        except SpecError as e:
            assert "\n" not in str(e)

    check()


# -- other inputs ----------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "0s", "0m", "0.0"])
def test_zero_timeout_is_an_error_not_no_timeout(no_site_config, files, value):
    with pytest.raises(SpecError, match=f"bad timeout '{value}': give a positive duration"):
        build(config.Config(timeout=value), script=str(files[0]))


@pytest.mark.parametrize("value", ["00:00:00", "0:0", "0"])
def test_zero_time_limit_is_an_error_not_no_limit(no_site_config, files, value):
    with pytest.raises(SpecError, match="Slurm reads as no limit"):
        build(config.Config(time=value), script=str(files[0]))


@pytest.mark.parametrize("args", [["--array=1-3"], ["-a", "1-3"], ["--array", "1-3"]])
def test_job_arrays_are_refused_at_build(no_site_config, files, args):
    with pytest.raises(SpecError, match="job array.*one `kindslurm run` per task"):
        build(config.Config(sbatch_args=args), script=str(files[0]))


# -- the spec file on the node ----------------------------------------------

def test_spec_with_wrong_types_is_a_spec_error(no_site_config, files, tmp_path):
    import json

    data = json.loads(build(script=str(files[0])).to_json())
    for key, bad in (("workers", "two"), ("manifests", "a.yaml"), ("tools", ["kind"]), ("run_id", None)):
        with pytest.raises(SpecError, match=f"job spec is damaged .*{key}"):
            spec.JobSpec.from_json(json.dumps({**data, key: bad}))
    broken = tmp_path / "spec.json"
    broken.write_text("{not json")
    with pytest.raises(SpecError, match=f"{broken}: job spec is damaged"):
        spec.JobSpec.load(broken)
    with pytest.raises(SpecError, match="cannot read job spec"):
        spec.JobSpec.load(tmp_path / "none.json")


def test_old_spec_without_script_origin_and_newer_keys_still_load(no_site_config, files):
    import json

    data = json.loads(build(script=str(files[0])).to_json())
    del data["script_origin"]
    data["added_by_a_later_version"] = 1
    loaded = spec.JobSpec.from_json(json.dumps(data))
    assert loaded.script_origin is None and loaded.script == str(files[0].resolve())


# -- inputs copied at submit time --------------------------------------------

@pytest.fixture
def staged(no_site_config, files, tmp_path):
    script, job = files
    script.chmod(0o755)
    other = tmp_path / "other"
    other.mkdir()
    twin = other / "job.yaml"  # same basename as the first manifest
    twin.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    job_dir = tmp_path / "jobs" / "r1"
    job_dir.mkdir(parents=True, mode=0o700)
    s = build(script=str(script), manifests=[str(job), str(twin)], job_dir=job_dir)
    return s, spec.stage_inputs(s), job_dir


def test_stage_inputs_copies_everything_and_points_the_spec_at_the_copies(staged):
    import stat

    before, after, job_dir = staged
    inputs = job_dir / "inputs"
    assert after.script == str(inputs / "w.sh") and after.script_origin == before.script
    assert after.manifests == [str(inputs / "manifests" / "01-job.yaml"), str(inputs / "manifests" / "02-job.yaml")]
    for orig, copy in zip([before.script, *before.manifests], [after.script, *after.manifests]):
        assert Path(copy).read_bytes() == Path(orig).read_bytes()
    mode = lambda p: stat.S_IMODE(Path(p).stat().st_mode)  # noqa: E731
    assert mode(inputs) == 0o700 and mode(inputs / "manifests") == 0o700
    assert mode(after.script) == 0o700 and {mode(m) for m in after.manifests} == {0o600}
    assert spec.JobSpec.from_json(after.to_json()) == after


def test_edits_after_staging_do_not_reach_the_job(staged):
    before, after, _ = staged
    Path(before.manifests[0]).write_text("apiVersion: v1\nkind: 5\n")
    Path(before.script).write_text("rm -rf /\n")
    assert "kind: Job" in Path(after.manifests[0]).read_text()
    assert Path(after.script).read_text() == "#!/bin/bash\necho hi\n"


def test_a_manifest_broken_between_build_and_staging_is_caught(no_site_config, files, tmp_path):
    script, job = files
    s = build(script=str(script), manifests=[str(job)], job_dir=tmp_path)
    job.write_text("apiVersion: v1\nkind: Job\nmetadata: foo\n")
    with pytest.raises(SpecError, match="metadata must be a mapping"):
        spec.stage_inputs(s)


def test_symlinks_are_copied_as_content_and_plain_scripts_stay_unexecutable(no_site_config, tmp_path):
    import stat

    real = tmp_path / "real"
    real.mkdir()
    (real / "run.sh").write_text("echo real\n")
    (real / "run.sh").chmod(0o644)
    (real / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    (tmp_path / "link.sh").symlink_to(real / "run.sh")
    (tmp_path / "link.yaml").symlink_to(real / "cm.yaml")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    s = spec.stage_inputs(build(script=str(tmp_path / "link.sh"), manifests=[str(tmp_path / "link.yaml")], job_dir=job_dir))
    for p in (s.script, *s.manifests):
        assert not Path(p).is_symlink() and Path(p).is_file()
    assert Path(s.script).read_text() == "echo real\n" and stat.S_IMODE(Path(s.script).stat().st_mode) == 0o600


def test_names_that_could_clash_with_the_inputs_layout_do_not(no_site_config, tmp_path):
    script = tmp_path / "manifests"
    script.write_text("true\n")
    m = tmp_path / "m.yaml"
    m.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n")
    kc = tmp_path / "kind.yaml"
    kc.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n")
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    s = spec.stage_inputs(build(config.Config(kind_config=str(kc)), script=str(script), manifests=[str(m)], job_dir=job_dir))
    assert Path(s.script).read_text() == "true\n" and Path(s.manifests[0]).is_file()
    assert s.kind_config == str(job_dir / "inputs" / "kind-config" / "kind.yaml") and Path(s.kind_config).read_text() == kc.read_text()


def test_manifest_only_spec_stages_without_a_script(no_site_config, files, tmp_path):
    s = spec.stage_inputs(build(manifests=[str(files[1])], job_dir=tmp_path))
    assert s.script is None and s.script_origin is None and Path(s.manifests[0]).parent == tmp_path / "inputs" / "manifests"


def test_staging_twice_or_without_a_job_dir_is_a_spec_error(staged, no_site_config, files, tmp_path):
    _, after, _ = staged
    with pytest.raises(SpecError, match="already staged"):
        spec.stage_inputs(after)
    with pytest.raises(SpecError, match="cannot write the job's inputs"):
        spec.stage_inputs(build(script=str(files[0]), job_dir=tmp_path / "missing"))
