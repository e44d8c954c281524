"""Interactive clusters without a cluster: the hold's exits (down, scancel,
time limit) with a stand-in provider and API, unique names with a fake
scheduler, the certificate SANs, the tunnel's files and kubeconfig, and what
gc does with tunnels. The real paths are in tests/integration/test_interactive.py."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Sequence

import pytest
import yaml

from kindslurm import api, exitcodes, records
from kindslurm.errors import SpecError
from kindslurm.interactive import clusters, tunnel
from kindslurm.node import gc_interactive, hold
from kindslurm.node.lifecycle import Lifecycle
from kindslurm.phases import Phase
from kindslurm.scheduler.base import JobState
from kindslurm.spec import JobSpec
from tests.unit.fakes import FakeJobStates, FakeProvider


# -- the hold on the node ------------------------------------------------------
@pytest.fixture
def held_spec(no_site_config: Path, tmp_path: Path, mocker, monkeypatch) -> JobSpec:
    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[])
    mocker.patch("kindslurm.node.capacity.check", return_value=[])
    ready = SimpleNamespace(metadata=SimpleNamespace(name="n"),
                            status=SimpleNamespace(conditions=[SimpleNamespace(type="Ready", status="True")]))
    kube = mocker.Mock()
    kube.core.list_node.return_value = SimpleNamespace(items=[ready])
    mocker.patch("kindslurm.kube.Kube", return_value=kube)
    mocker.patch("kindslurm.node.harvest.Harvester.of", return_value=mocker.Mock())
    mocker.patch("kindslurm.node.harvest.collect")
    monkeypatch.setattr(hold, "POLL", 0.05)
    return JobSpec(run_id="r1", mode="local", prefix="dev", user="t", submit_dir=str(tmp_path),
                   job_dir=str(tmp_path / "job"), hold=True, time_seconds=600)


def _after(seconds: float, fn) -> None:  # type: ignore[no-untyped-def]
    threading.Timer(seconds, fn).start()


def test_down_ends_a_held_cluster_as_completed(held_spec: JobSpec) -> None:
    provider = FakeProvider()
    lc = Lifecycle(held_spec, provider)
    _after(0.5, lambda: Path(held_spec.job_dir, "down-request").write_text("now\n"))
    assert lc.run() == 0
    rec = records.load("r1")
    assert rec is not None and rec.phase == "completed" and rec.reason == hold.DOWN_REASON
    assert "held" in rec.phases and rec.ends and rec.ends > time.time()
    assert provider.found == {} and any(c.startswith("delete") for c in provider.calls)


@pytest.mark.parametrize("signum,down_first,status,code", [
    (signal.SIGTERM, False, "cancelled", exitcodes.CANCELLED),
    (signal.SIGTERM, True, "completed", 0),  # `down` wrote its request, then scancelled
    (signal.SIGUSR1, False, "timeout", exitcodes.TIME_LIMIT),
])
def test_signals_end_the_hold_and_tear_down(held_spec: JobSpec, signum: int, down_first: bool, status: str,
                                            code: int) -> None:
    provider = FakeProvider()
    lc = Lifecycle(held_spec, provider)

    def poke() -> None:
        while (rec := records.load("r1")) is None or rec.phase != "held":
            time.sleep(0.02)
        if down_first:
            Path(held_spec.job_dir, "down-request").write_text("now\n")
        os.kill(os.getpid(), signum)

    threading.Thread(target=poke, daemon=True).start()
    assert lc.run() == code
    assert records.load("r1").phase == status  # type: ignore[union-attr]
    assert provider.found == {}


def test_the_api_server_certificate_names_the_node_and_loopback() -> None:
    cfg = "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nkubeadmConfigPatches:\n- 'kind: InitConfiguration'\n"
    out = yaml.safe_load(hold.api_server_sans(cfg, ["node12", "node12.example.org"]))
    patches = out["kubeadmConfigPatches"]
    assert patches[0] == "kind: InitConfiguration"  # the user's stay first
    sans = yaml.safe_load(patches[1])["apiServer"]["certSANs"]
    assert sans == ["localhost", "127.0.0.1", "node12", "node12.example.org"]


def test_job_end_comes_from_squeue_when_slurm_sets_no_end_time(monkeypatch) -> None:
    from kindslurm import proc

    monkeypatch.delenv("SLURM_JOB_END_TIME", raising=False)
    monkeypatch.setattr(proc, "run", lambda argv, **kw: proc.Result(list(argv), 0, "2030-01-02T03:04:05\n", ""))
    assert hold.job_end("squeue", "7", 0.0, 60) == time.mktime((2030, 1, 2, 3, 4, 5, 0, 0, -1))
    monkeypatch.setattr(proc, "run", lambda argv, **kw: proc.Result(list(argv), 0, "N/A\n", ""))
    assert hold.job_end("squeue", "7", 100.0, 60) == 160.0
    monkeypatch.setenv("SLURM_JOB_END_TIME", "1234")
    assert hold.job_end("squeue", "7", 100.0, 60) == 1234.0


# -- names on the login node ---------------------------------------------------
class Sched:
    """What clusters.up needs of the scheduler."""

    def __init__(self, jobs: dict[str, str]) -> None:
        self.jobs = jobs
        self.submitted: list[str] = []

    def states(self, ids: Sequence[str]) -> dict[str, JobState]:
        return {j: JobState(j, self.jobs[j]) for j in ids if j in self.jobs}

    def state(self, job_id: str) -> JobState | None:
        return self.states([job_id]).get(job_id)

    def submit(self, script: str, extra: Sequence[str] = ()) -> str:
        self.submitted.append(script)
        return "99"

    def check_partition(self, partition: str | None) -> None:
        pass


def _held(run_id: str, job: str | None, prefix: str = "dev", created: float | None = None) -> records.Record:
    rec = records.Record(run_id=run_id, mode="sbatch", user="t", job_dir="/x", prefix=prefix, job_id=job,
                         cluster=f"{prefix}-{job}", phase=Phase.HELD, interactive=True)
    if created is not None:
        rec.created = created
    return records.save(rec)


@pytest.fixture
def sched(no_site_config: Path, monkeypatch) -> Sched:
    s = Sched({"5": "RUNNING", "6": "COMPLETED"})
    monkeypatch.setattr(api, "get_scheduler", lambda cfg=None: s)
    return s


def test_a_live_name_is_refused_naming_its_job_and_nothing_is_submitted(sched: Sched) -> None:
    _held("r-live", "5")
    with pytest.raises(SpecError) as e:
        clusters.up("dev", {})
    assert "already up: job 5 (cluster dev-5, held)" in str(e.value) and e.value.exit_code == exitcodes.USAGE
    assert sched.submitted == [] and len(records.all_records()) == 1


def test_a_name_whose_job_is_gone_is_free_and_others_never_clash(sched: Sched) -> None:
    _held("r-dead", "6")  # its job completed (killed node side: record still says held)
    _held("r-other", "5", prefix="other")
    run = clusters.up("dev", {})
    assert run.job_id == "99" and run.cluster == "dev-99" and len(sched.submitted) == 1
    rec = records.load(run.run_id)
    assert rec is not None and rec.interactive and rec.prefix == "dev"


def test_a_name_being_submitted_is_taken(sched: Sched) -> None:
    _held("r-new", None)
    with pytest.raises(SpecError, match="being submitted"):
        clusters.up("dev", {})
    _held("r-new", None, created=time.time() - 3600)  # a submission that never completed
    assert clusters.up("dev", {}).job_id == "99"


def test_down_of_a_cluster_whose_job_died_says_gc(sched: Sched) -> None:
    _held("r-dead", "6")
    code, message = clusters.down("dev")
    assert code == exitcodes.TEARDOWN_INCOMPLETE and "kindslurm gc" in message and "job 6" in message


def test_down_refuses_a_workload_run(sched: Sched) -> None:
    records.save(records.Record(run_id="r-run", mode="sbatch", user="t", job_dir="/x", prefix="ks-t", job_id="5",
                                cluster="ks-t-5", phase="running"))
    with pytest.raises(SpecError, match="not an interactive cluster: stop it with `kindslurm cancel"):
        clusters.down("ks-t-5")


# -- tunnels --------------------------------------------------------------------
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:41234
  name: kind-dev-5
contexts:
- context: {cluster: kind-dev-5, user: kind-dev-5}
  name: kind-dev-5
current-context: kind-dev-5
users:
- name: kind-dev-5
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}
"""


def test_a_tunnel_kubeconfig_keeps_the_ca_and_credentials() -> None:
    assert tunnel.api_port(KUBECONFIG) == 41234
    out = yaml.safe_load(tunnel.rewrite(KUBECONFIG, 5555))
    orig = yaml.safe_load(KUBECONFIG)
    assert out["clusters"][0]["cluster"] == {"certificate-authority-data": "Q0E=", "server": "https://127.0.0.1:5555"}
    assert out["users"] == orig["users"] and out["current-context"] == "kind-dev-5"
    assert "insecure" not in tunnel.rewrite(KUBECONFIG, 5555)


def test_a_published_tunnel_is_found_live_then_withdrawn(no_site_config: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    rec = _held("r1", "5")
    st = tunnel.publish(rec, listener.getsockname()[1], KUBECONFIG, "srun")
    kc = Path(st.kubeconfig)
    assert kc.stat().st_mode & 0o777 == 0o600 and tunnel.state_file("dev-5").stat().st_mode & 0o777 == 0o600
    assert tunnel.live("dev-5") == st
    listener.close()
    assert tunnel.live("dev-5") is None  # not accepting: not a tunnel to reuse
    tunnel.withdraw(st)
    assert not kc.exists() and not tunnel.state_file("dev-5").exists()


def _tunnel_state(tmp: Path, cluster: str, run_id: str, pid: int, via: str = "srun", host: str | None = None) -> Path:
    from kindslurm import paths, proc

    d = paths.ensure_private_dir(paths.tunnels_dir())
    state = d / f"{cluster}@{host or socket.gethostname()}.json"
    state.write_text(json.dumps({"cluster": cluster, "run_id": run_id, "job_id": "5", "host": host or socket.gethostname(),
                                 "pid": pid, "pid_start": proc.start_time(pid), "port": 1, "kubeconfig": "k", "via": via}))
    (d / f"{state.stem}.yaml").write_text("x")
    return state


def test_gc_stops_the_tunnels_of_ended_clusters_and_keeps_live_ones(no_site_config: Path, tmp_path: Path) -> None:
    from kindslurm.node.gc import Collector

    sleeper = subprocess.Popen(["sleep", "60"])
    laptop = subprocess.Popen(["sleep", "60"])
    try:
        _held("r-live", "5")
        _held("r-gone", "6")
        live = _tunnel_state(tmp_path, "dev-5", "r-live", sleeper.pid)
        gone = _tunnel_state(tmp_path, "dev-6", "r-gone", sleeper.pid)
        ssh = _tunnel_state(tmp_path, "dev-9", "r-remote", laptop.pid, via="ssh:login")
        dead = _tunnel_state(tmp_path, "dev-8", "r-remote2", 999999, via="ssh:login")
        gc = Collector(FakeProvider(), FakeJobStates({"5": "RUNNING"}))
        gc.states = gc.slurm.states(["5", "6"])
        acts = {a.name: a for a, _ in gc_interactive.plan(gc, records.all_records())}
        assert set(acts) == {gone.stem, dead.stem}
        assert "gone from Slurm" in acts[gone.stem].reason
        for a, do in gc_interactive.plan(gc, records.all_records()):
            if a.name == gone.stem:
                do()
        assert sleeper.wait(timeout=5) == -signal.SIGTERM and not gone.exists()
        assert live.exists() and ssh.exists() and laptop.poll() is None
    finally:
        for p in (sleeper, laptop):
            p.kill()


def test_up_wait_returns_once_held_or_fails_with_the_runs_own_code(sched: Sched) -> None:
    from kindslurm.errors import KindslurmError

    rec = _held("r-ok", "5")
    rec.ends = time.time() + 600
    records.save(rec)
    run = api.Submitted("5", "r-ok", "dev-5", "/x")
    assert clusters.wait_ready(run).phase == "held"
    assert "9m" in clusters.usage(records.load("r-ok"))  # type: ignore[arg-type]
    records.save(records.Record(run_id="r-bad", mode="sbatch", user="t", job_dir="/x", prefix="dev", job_id="6",
                                cluster="dev-6", phase="failed", exit_code=71, reason="kind create cluster failed",
                                interactive=True))
    with pytest.raises(KindslurmError) as e:
        clusters.wait_ready(api.Submitted("6", "r-bad", "dev-6", "/x"))
    assert e.value.exit_code == 71 and "ended before it was Ready: kind create cluster failed" in str(e.value)


def test_a_tunnel_relays_binary_both_ways_through_node_relay() -> None:
    """The listener and the node end (`kindslurm node-relay`) without srun: bytes with no newline
    (as TLS sends them) must pass at once, both ways, on several connections."""
    import sys

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)

    def serve() -> None:
        for _ in range(2):
            conn, _ = server.accept()
            data = conn.recv(100)
            conn.sendall(bytes(reversed(data)))  # and keep the connection open: no EOF to flush on
            time.sleep(0.5)
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    listener = tunnel.Listener([sys.executable, "-m", "kindslurm", "node-relay", str(server.getsockname()[1])])
    try:
        for payload in (b"\x16\x03\x01\x00\xffno-newline", bytes(range(100))):
            with socket.create_connection(("127.0.0.1", listener.port), timeout=10) as c:
                c.sendall(payload)
                got = b""
                while len(got) < len(payload):
                    got += c.recv(1000)
                assert got == bytes(reversed(payload))
        assert listener.connections == 2
    finally:
        listener.close()
        server.close()
