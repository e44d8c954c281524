"""Remote mode's logic without a login node: which host a command works
against, what ~/.ssh/config adds, the `remote:` config, the records source,
the login node's command line for a run, and the job directory's copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kindslurm import api, config, records
from kindslurm.errors import SpecError
from kindslurm.remote import mirror
from kindslurm.remote import run as remote_run
from kindslurm.transport import where
from kindslurm.transport.local import LocalTransport
from kindslurm.transport.remote_records import TransportRecords
from kindslurm.transport.sshtarget import Target, from_config, resolve


@pytest.fixture(autouse=True)
def reset_host():
    where.use_host()
    yield
    where.use_host()


def write_config(xdg: Path, text: str) -> None:
    (xdg / "config" / "kindslurm").mkdir(parents=True, exist_ok=True)
    (xdg / "config" / "kindslurm" / "config.yaml").write_text(text)


def test_local_unless_a_host_is_named(no_site_config: Path) -> None:
    assert where.target() is None and not api.is_remote() and isinstance(api.get_records(), records.LocalSource)
    write_config(no_site_config, "remote:\n  host: me@login:2222\n  jump: gw\n  command: /opt/ks/bin/kindslurm\n")
    where.use_host()
    t = where.target()
    assert t is not None and (t.user, t.host, t.port, t.jump) == ("me", "login", 2222, "gw")
    assert where.remote_command("ls") == ["/opt/ks/bin/kindslurm", "--no-remote", "ls"]
    where.use_host("other.example.org:22")  # --host over remote.host; the rest of remote: still applies
    t = where.target()
    assert t is not None and (t.user, t.host, t.port, t.jump) == (None, "other.example.org", 22, "gw")
    where.use_host(here=True)  # the login node's own kindslurm, driven by a laptop
    assert where.target() is None and isinstance(api.get_transport(), LocalTransport)


def test_remote_config_is_checked_like_the_rest(no_site_config: Path) -> None:
    write_config(no_site_config, "remote:\n  hots: login\n")
    with pytest.raises(SpecError, match="unknown key 'hots' under remote .* valid keys are host, user"):
        config.load()
    write_config(no_site_config, "remote: login\n")
    with pytest.raises(SpecError, match="`remote` must be a mapping"):
        config.load()
    write_config(no_site_config, "remote:\n  host: 'bad host'\n")
    with pytest.raises(SpecError, match="remote.host 'bad host' is not a host name"):
        where.target()
    with pytest.raises(SpecError, match="SSH key /nonexistent/key does not exist: fix --ssh-key"):
        from_config({}, "login", "/nonexistent/key", False)


def test_ssh_config_completes_the_hops_as_openssh_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    key = tmp_path / ".ssh" / "id_login"
    key.write_text("k")
    (tmp_path / ".ssh" / "config").write_text(
        "Host login\n  HostName login.hpc.example.org\n  User alice\n  Port 2200\n"
        f"  IdentityFile {key}\n  ProxyJump bob@gw.example.org:2201\n"
        "Host gw.example.org\n  User nobody-overridden\n")
    hops = resolve(Target("login"))
    assert [(h.alias, h.host, h.port, h.user) for h in hops] == [
        ("gw.example.org", "gw.example.org", 2201, "bob"), ("login", "login.hpc.example.org", 2200, "alice")]
    assert hops[1].keys == (str(key),) and hops[1].known_hosts == str(tmp_path / ".ssh" / "known_hosts")
    assert hops[1].key_name == "[login.hpc.example.org]:2200"
    explicit = resolve(Target("login", user="carol", port=22, jump="none"))
    assert [(h.host, h.port, h.user) for h in explicit] == [("login.hpc.example.org", 22, "carol")]
    assert explicit[0].key_name == "login.hpc.example.org"


def test_records_read_through_a_transport(no_site_config: Path) -> None:
    rec = records.save(records.Record(run_id="20260101-000000-abcdef", mode="sbatch", user="u", job_dir="/j",
                                      job_id="7", cluster="ks-u-7", phase="running"))
    src = TransportRecords(LocalTransport(), str(records.paths.records_dir()))
    assert src.load(rec.run_id) == records.load(rec.run_id) and [r.run_id for r in src.all()] == [rec.run_id]
    assert src.load("../etc/passwd") is None and src.load("") is None
    assert records.find("ks-u-7", src).run_id == rec.run_id  # type: ignore[union-attr]
    (records.paths.records_dir() / "broken.json").write_text("{not json")
    assert len(src.all()) == 1
    assert records.parse('{"run_id": "x", "mode": "sbatch", "user": "u", "job_dir": "/j", "from_the_future": 1}')


def test_the_login_nodes_command_line_for_a_run(no_site_config: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/bash\n")
    manifest = tmp_path / "job.yaml"
    manifest.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n")
    archive = tmp_path / "img.tar"
    archive.write_text("tar")
    options = {"cpus": 4, "time": "30", "sbatch_args": ("--exclusive",), "extra_mounts": ("/scratch/me:/data",),
               "load_images": (str(archive),), "keep_on_failure": True}
    spec = remote_run.check_locally(str(script), ["--epochs", "3"], [str(manifest)], "exp", options)
    up = remote_run.Upload("/home/me/jobs/R")
    argv = remote_run.remote_argv(spec, up, options, "exp")
    assert argv[:5] == ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", "/home/me/jobs/R/work"]
    ks = argv[argv.index("--no-remote") + 1:]
    assert ks[:5] == ["run", "--submit", "--parsable", "--run-id", spec.run_id]
    assert ks[ks.index("--cpus") + 1] == "4" and ks[ks.index("--sbatch-arg") + 1] == "--exclusive"
    assert ks[ks.index("--mount") + 1] == "/scratch/me:/data"  # the login node's path, checked there
    assert ks[ks.index("--load-image") + 1] == "/home/me/jobs/R/upload/img.tar" and "--keep-on-failure" in ks
    assert ks[ks.index("--manifest") + 1] == "/home/me/jobs/R/upload/job.yaml"
    assert ks[-4:] == ["/home/me/jobs/R/upload/train.sh", "--", "--epochs", "3"]
    assert [(Path(local).name, remote.rsplit("/", 1)[1], mode) for local, remote, mode in up.files] == [
        ("img.tar", "img.tar", 0o600), ("job.yaml", "job.yaml", 0o600), ("train.sh", "train.sh", 0o700)]


def test_bad_input_is_refused_before_anything_leaves_this_host(no_site_config: Path, tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="workload script .* does not exist"):
        remote_run.check_locally(str(tmp_path / "missing.sh"), [], [], None, {})
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\n")
    with pytest.raises(SpecError, match="bad time limit"):
        remote_run.check_locally(str(script), [], [], None, {"time": "soon"})
    with pytest.raises(SpecError, match="nothing to run"):
        remote_run.check_locally(None, [], [], None, {})
    with pytest.raises(SpecError, match="--srun runs on the host it is given on"):
        remote_run.run(None, [], [], None, {"use_srun": True}, wait=False, parsable=False, dry_run=False)


def test_the_copy_back_takes_only_regular_files_and_only_what_changed(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    (remote / "pods" / "ns" / "p").mkdir(parents=True)
    (remote / "pods" / "ns" / "p" / "c.log").write_text("log\n")
    (remote / "summary.json").write_text("{}")
    os.chmod(remote / "summary.json", 0o640)
    os.symlink("/etc/shadow", remote / "planted")
    local = tmp_path / "local"
    assert mirror.mirror(LocalTransport(), str(remote), local) == 2
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()) == ["pods/ns/p/c.log", "summary.json"]
    assert (local / "summary.json").stat().st_mode & 0o777 == 0o640 and local.stat().st_mode & 0o777 == 0o700
    assert mirror.mirror(LocalTransport(), str(remote), local) == 0
    (remote / "summary.json").write_text('{"done": 1}')
    assert mirror.mirror(LocalTransport(), str(remote), local) == 1 and (local / "summary.json").read_text() == '{"done": 1}'


def test_saved_pod_logs_are_found_by_pod_namespace_or_container(no_site_config: Path, tmp_path: Path) -> None:
    from kindslurm.errors import KindslurmError

    job = tmp_path / "job"
    for ns, pod, c in (("default", "web", "main"), ("default", "web", "side"), ("kube-system", "dns", "coredns")):
        (job / "pods" / ns / pod).mkdir(parents=True, exist_ok=True)
        (job / "pods" / ns / pod / f"{c}.log").write_text(c)
    records.save(records.Record(run_id="20260101-000000-abcdef", mode="local", user="u", job_dir=str(job),
                                phase="completed"))
    names = {ref: [p.name for p in api.pod_logs("20260101-000000-abcdef", ref)]
             for ref in ("web", "default/web", "default/web/side", "dns")}
    assert names == {"web": ["main.log", "side.log"], "default/web": ["main.log", "side.log"],
                     "default/web/side": ["side.log"], "dns": ["coredns.log"]}
    with pytest.raises(KindslurmError, match="pods saved are default/web, kube-system/dns"):
        api.pod_logs("20260101-000000-abcdef", "nope")
