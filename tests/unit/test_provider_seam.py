"""The cluster-provider seam is real: the node side runs against any Provider,
and only kindslurm/cluster/ knows podman's and kind's command lines."""

from __future__ import annotations

import ast
import io
import json
from pathlib import Path

import pytest

from kindslurm import exitcodes, records
from kindslurm.errors import ClusterExistsError, CommandTimeout, NodeFullError, PreflightError
from kindslurm.node import capacity
from kindslurm.node.lifecycle import Lifecycle
from kindslurm.spec import JobSpec

from .fakes import FakeJobStates, FakeProvider

PACKAGE = Path(__file__).resolve().parents[2] / "kindslurm"


@pytest.fixture
def spec(no_site_config: Path, tmp_path: Path) -> JobSpec:
    return JobSpec(run_id="seam", mode="local", prefix="ks-seam", user="t", submit_dir=str(tmp_path),
                   job_dir=str(tmp_path / "job"), script=None, manifests=[])


def test_a_run_boots_and_removes_its_cluster_through_any_provider(spec: JobSpec, mocker) -> None:  # type: ignore[no-untyped-def]
    mocker.patch("kindslurm.node.capacity.check", return_value=[])
    mocker.patch("kindslurm.kube.Kube")
    from kindslurm.node import preflight

    real = preflight.run_checks
    asked = []

    def host_independent(provider, **kw):  # type: ignore[no-untyped-def]
        asked.append(provider)  # this host's cgroups or disk must not fail the test
        return [c for c in real(provider, **kw) if c.status == preflight.OK]

    mocker.patch("kindslurm.node.preflight.run_checks", side_effect=host_independent)
    provider = FakeProvider()
    out = io.StringIO()
    code = Lifecycle(spec, provider=provider, out=out).run()
    assert code == exitcodes.OK, out.getvalue()
    assert asked == [provider]
    created = [c for c in provider.calls if c.startswith("create ")]
    assert len(created) == 1 and f"delete {created[0][7:]}" in provider.calls
    assert provider.found == {}  # nothing left behind
    summary = json.loads(Path(spec.job_dir, "summary.json").read_text())
    assert summary["status"] == "completed"
    assert [p["name"] for p in summary["phases"]][:2] == ["preflight", "creating"]
    rec = records.load("seam")
    assert rec is not None and rec.phase == "completed"


def test_a_failed_create_is_deleted_through_the_provider(spec: JobSpec, mocker) -> None:  # type: ignore[no-untyped-def]
    mocker.patch("kindslurm.node.capacity.check", return_value=[])
    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[])
    provider = FakeProvider(fail_create=True)
    code = Lifecycle(spec, provider=provider, out=io.StringIO()).run()
    assert code == exitcodes.CLUSTER_CREATE
    assert any(c.startswith("delete ") for c in provider.calls) and provider.found == {}
    rec = records.load("seam")
    assert rec is not None and rec.phase == "failed" and rec.exit_code == exitcodes.CLUSTER_CREATE


def test_preflight_asks_the_provider_not_podman(spec: JobSpec, mocker) -> None:  # type: ignore[no-untyped-def]
    from kindslurm.node import preflight

    run = mocker.patch("kindslurm.proc.run", side_effect=AssertionError("preflight ran a program"))
    checks = preflight.run_checks(FakeProvider(), kubectl="true")
    assert run.call_count == 0
    names = [c.name for c in checks]
    assert names[:2] == ["engine", "kubectl"] and "OCI runtime" in names


def test_gc_removes_a_dead_jobs_cluster_and_keeps_a_live_one(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kindslurm import paths
    from kindslurm.node import gc

    monkeypatch.setattr(paths, "runtime_dir", lambda: xdg / "run")
    monkeypatch.setattr(paths, "markers_dir", lambda: xdg / "run" / "creating")
    monkeypatch.setenv("KINDSLURM_GC_GRACE", "0")
    monkeypatch.setattr(capacity.hostsysctl, "restore", lambda: {})
    old = 1_000_000.0
    provider = FakeProvider()
    for run_id, job_id in (("r-dead", "1"), ("r-live", "2")):
        records.save(records.Record(run_id=run_id, user="u", job_dir=f"/nonexistent/{run_id}", mode="sbatch",
                                    phase="running", job_id=job_id, cluster=f"c-{run_id[2:]}"))
        provider.add(f"c-{run_id[2:]}", created=old)
    actions = gc.Collector(provider, FakeJobStates({"2": "RUNNING"})).run()
    assert {(a.kind, a.name): a.result for a in actions if a.kind == "cluster"} == {("cluster", "c-dead"): "removed"}
    assert set(provider.found) == {"c-live"}
    assert records.load("r-live") is not None


def test_gc_keeps_the_record_of_a_cluster_it_could_not_remove(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kindslurm import paths
    from kindslurm.node import gc

    monkeypatch.setattr(paths, "runtime_dir", lambda: xdg / "run")
    monkeypatch.setattr(paths, "markers_dir", lambda: xdg / "run" / "creating")
    monkeypatch.setenv("KINDSLURM_GC_GRACE", "0")
    monkeypatch.setattr(capacity.hostsysctl, "restore", lambda: {})
    records.save(records.Record(run_id="r-stuck", user="u", job_dir="/nonexistent/r-stuck", mode="sbatch",
                                phase="running", job_id="4", cluster="c-stuck"))
    provider = FakeProvider(leftovers=["c-stuck"])
    provider.add("c-stuck", created=1_000_000.0)
    results = {a.kind: a.result for a in gc.Collector(provider, FakeJobStates()).run()}
    assert results["cluster"].startswith("FAILED") and results["record"] == "FAILED: kept while cluster c-stuck remains"
    assert records.load("r-stuck") is not None and "c-stuck" in provider.found


def test_gc_keeps_every_job_cluster_when_the_scheduler_cannot_be_asked(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kindslurm import paths
    from kindslurm.node import gc

    monkeypatch.setattr(paths, "runtime_dir", lambda: xdg / "run")
    monkeypatch.setattr(paths, "markers_dir", lambda: xdg / "run" / "creating")
    monkeypatch.setenv("KINDSLURM_GC_GRACE", "0")
    records.save(records.Record(run_id="r-job", user="u", job_dir="/nonexistent/r-job", mode="sbatch",
                                phase="running", job_id="3", cluster="c-job"))
    provider = FakeProvider()
    provider.add("c-job", created=1_000_000.0)
    assert gc.Collector(provider, FakeJobStates(broken=True)).run(dry_run=True) == []
    assert set(provider.found) == {"c-job"}


def test_capacity_release_asks_the_provider_for_clusters(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kindslurm import paths

    monkeypatch.setattr(paths, "runtime_dir", lambda: xdg / "run")
    monkeypatch.setattr(paths, "markers_dir", lambda: xdg / "run" / "creating")
    restored: list[int] = []

    def restore() -> dict[str, str]:
        restored.append(1)
        return {"k": "v"}

    monkeypatch.setattr(capacity.hostsysctl, "restore", restore)
    busy = FakeProvider()
    busy.add("ks-other")
    assert capacity.release(busy) == {} and restored == []
    assert capacity.release(FakeProvider()) == {"k": "v"} and restored == [1]


def test_a_full_node_is_worth_retrying_and_cgroup_v1_is_not() -> None:
    assert NodeFullError("capacity/memory: 100 MB available").retryable
    assert not PreflightError("cgroup: this node runs cgroup v1").retryable
    assert issubclass(NodeFullError, PreflightError) and NodeFullError.exit_code == exitcodes.PREFLIGHT
    assert not ClusterExistsError("a cluster named ks-a already exists").retryable
    assert CommandTimeout(["kind", "create"], 1.0).retryable


def _argv_heads(module: Path) -> list[str]:
    """First words of the argv lists a module builds: a list literal whose first
    element is a name or attribute ending in podman/kind (self.podman, podman)."""
    heads = []
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.List) and node.elts:
            first = node.elts[0]
            name = first.attr if isinstance(first, ast.Attribute) else first.id if isinstance(first, ast.Name) else None
            if name in ("podman", "kind") or (isinstance(first, ast.Constant) and first.value in ("podman", "kind")):
                heads.append(f"{module.relative_to(PACKAGE)}:{node.lineno}")
    return heads


def test_only_the_cluster_package_builds_podman_or_kind_command_lines() -> None:
    """The rule: an argv whose program is podman or kind (a list starting with the
    literal "podman"/"kind" or a variable or attribute so named) is built only under
    kindslurm/cluster/. Naming the tools elsewhere is fine: config defaults,
    `spec.tool("podman")` handed to KindPodman, and messages that tell the user
    to run `podman info`."""
    inside = [h for m in sorted((PACKAGE / "cluster").rglob("*.py")) for h in _argv_heads(m)]
    outside = [h for m in sorted(PACKAGE.rglob("*.py")) if "cluster" not in m.relative_to(PACKAGE).parts
               for h in _argv_heads(m)]
    assert inside, "the rule finds nothing: it no longer recognises the provider's own command lines"
    assert outside == []


def _answers(mocker, replies: dict[str, tuple[int, str]]):  # type: ignore[no-untyped-def]
    """proc.run as podman would answer, keyed by the podman subcommand."""
    from kindslurm import proc

    def run(argv, **_kw):  # type: ignore[no-untyped-def]
        code, out = replies.get(argv[1], (125, ""))
        return proc.Result(list(argv), code, out, "")

    mocker.patch("kindslurm.cluster.kind_podman.shutil.which", return_value="/usr/bin/podman")
    return mocker.patch("kindslurm.proc.run", side_effect=run)


def test_kind_podman_reads_host_info_from_podman_info(mocker) -> None:  # type: ignore[no-untyped-def]
    from kindslurm.cluster.kind_podman import KindPodman
    from kindslurm.cluster.provider import HostInfo

    info = {"host": {"ociRuntime": {"name": "crun"}, "cgroupControllers": ["cpu", "memory"]},
            "store": {"graphRoot": "/var/lib/containers/storage"}}
    _answers(mocker, {"info": (0, json.dumps(info))})
    assert KindPodman().info() == HostInfo("crun", ["cpu", "memory"], "/var/lib/containers/storage")
    _answers(mocker, {"info": (0, "not json")})
    assert KindPodman().info() is None
    _answers(mocker, {})
    assert KindPodman().info() is None


@pytest.mark.parametrize("answer, url", [
    ((0, "127.0.0.1:40123\n"), "https://127.0.0.1:40123"),
    ((0, "0.0.0.0:40123\n"), "https://127.0.0.1:40123"),
    ((0, ""), None),
    ((125, "Error: no such container"), None),
])
def test_kind_podman_endpoint_is_the_mapped_api_server_port(mocker, answer: tuple[int, str], url: str | None) -> None:  # type: ignore[no-untyped-def]
    from kindslurm.cluster.kind_podman import KindPodman

    run = _answers(mocker, {"port": answer})
    assert KindPodman().endpoint("ks-a") == url
    assert run.call_args.args[0][1:] == ["port", "ks-a-control-plane", "6443/tcp"]


def test_kind_podman_satisfies_the_provider_protocol() -> None:
    from kindslurm.cluster.kind_podman import KindPodman
    from kindslurm.cluster.provider import Provider

    members = [m for m in vars(Provider) if not m.startswith("_")]
    assert members and all(callable(getattr(KindPodman, m, None)) for m in members)
    assert all(callable(getattr(FakeProvider, m, None)) for m in members)
