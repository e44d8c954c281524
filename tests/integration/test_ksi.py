"""Users of the original Kind-in-Slurm scripts (KSI): their five example
workloads, written only against KSI's contract and naming upstream images,
run unchanged through the real Slurm, as KSI users launch them (plain, with
`sbatch --wrap`, with `srun -N1`), with a site registry mirror (Debian's
docker-registry on this host) that holds local stand-ins under the upstream
names. A podman build serves an unchanged `image: NAME` manifest, an archive
an unchanged manifest naming an upstream `:latest` image, and a pod whose
image nobody has gets the stuck-pull line and ends by --timeout.

All runs are submitted at once by a module fixture, so their clusters boot
in parallel; each test then waits for its own and checks it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from .conftest import KINDSLURM, REPO, Env, assert_no_leftovers, sh, wait_job_gone
from .registry import Registry

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]

STAND_INS = {  # upstream name KSI's examples use -> the local image that plays it
    "library/alpine:latest": "localhost/kindslurm/busybox:1",
    "severalnines/sysbench:latest": "localhost/kindslurm/python:3",
    "bitnami/pytorch:2.0.1": "localhost/kindslurm/python:3",
}
DEADLINE = 600


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, cluster_host: None) -> Any:
    from kindslurm.node import images

    for upstream in STAND_INS:  # podman must not hold them: then only the mirror can serve them
        for name in images.podman_candidates(upstream):
            assert sh(["podman", "image", "exists", name]).returncode != 0, f"podman holds {name}: remove it first"
    registry = Registry(tmp_path_factory.mktemp("registry"))
    try:
        for upstream, local in STAND_INS.items():
            registry.push(local, upstream)
        yield registry
    finally:
        registry.stop()


def site_config(root: Path, **extra: Any) -> Path:
    """This host's site config (the offline node image) plus `extra`."""
    base = Path(os.environ.get("KINDSLURM_SITE_CONFIG", "/etc/kindslurm/config.yaml"))
    data = (yaml.safe_load(base.read_text()) if base.exists() else None) or {}
    data.update(extra)
    path = root / "site-config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Run:
    """One submitted run in its own user environment (records never mix)."""

    def __init__(self, env: Env, job_id: str | None = None, srun: subprocess.Popen[str] | None = None,
                 out: Path | None = None) -> None:
        self.env, self.job_id, self.srun, self.out = env, job_id, srun, out

    def finish(self) -> dict:
        if self.srun is not None:
            rc = self.srun.wait(timeout=DEADLINE)
            assert rc == 0, f"srun exited {rc}: {self.out.read_text() if self.out else ''}"
            (rec,) = self.env.records()
            self.job_id = rec["job_id"]
        assert self.job_id is not None
        wait_job_gone(self.job_id, timeout=DEADLINE)
        (rec,) = [r for r in self.env.records() if r.get("job_id") == self.job_id]
        return rec

    def log(self, rec: dict, name: str = "workload.log") -> str:
        return (Path(rec["job_dir"]) / name).read_text(errors="replace")


def new_env(tmp_path_factory: pytest.TempPathFactory, name: str, site: Path) -> Env:
    env = Env(tmp_path_factory.mktemp(name))
    env.vars["KINDSLURM_SITE_CONFIG"] = str(site)
    env.vars.pop("K8S_PORT", None)
    return env


def chosen_port() -> int:
    """A NodePort-range port nothing holds now, as a user would pick one."""
    from kindslurm import k8sport

    lease = k8sport.lease("0.0.0.0")
    lease.release()
    return lease.port


def submit(env: Env, *args: str) -> Run:
    res = env.ks("run", *args, "--parsable")
    assert res.returncode == 0, res.stdout + res.stderr
    return Run(env, res.stdout.strip())


@pytest.fixture(scope="module")
def podman_built(tmp_path_factory: pytest.TempPathFactory, cluster_host: None) -> Any:
    """A user's own `podman build`, named as podman names it: localhost/NAME:latest."""
    name = f"kstest-ksi-{secrets.token_hex(3)}"
    ctx = tmp_path_factory.mktemp("build")
    (ctx / "built.txt").write_text("built by podman on the node\n")
    (ctx / "Containerfile").write_text("FROM localhost/kindslurm/busybox:1\nCOPY built.txt /built.txt\n")
    res = sh(["podman", "build", "-q", "--pull=never", "-t", name, str(ctx)])
    assert res.returncode == 0, res.stderr
    assert sh(["podman", "image", "exists", f"localhost/{name}:latest"]).returncode == 0
    try:
        yield name
    finally:
        sh(["podman", "rmi", "-f", f"localhost/{name}:latest"])


@pytest.fixture(scope="module")
def upstream_archive(mirror: Registry, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A `podman save` archive holding a stand-in under an upstream name
    (severalnines/sysbench:latest). The name is in podman only while the
    archive is written (after the mirror's check), so only the archive serves it."""
    archive = tmp_path_factory.mktemp("archive") / "sysbench.tar"
    upstream = "docker.io/severalnines/sysbench:latest"
    assert sh(["podman", "tag", STAND_INS["severalnines/sysbench:latest"], upstream]).returncode == 0
    try:
        res = sh(["podman", "save", "-q", "--format", "docker-archive", "-o", str(archive), upstream])
        assert res.returncode == 0, res.stderr
    finally:
        sh(["podman", "untag", STAND_INS["severalnines/sysbench:latest"], upstream])
    assert sh(["podman", "image", "exists", upstream]).returncode != 0
    yield archive


@pytest.fixture(scope="module")
def runs(mirror: Registry, podman_built: str, upstream_archive: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Every run of this module, submitted together."""
    root = tmp_path_factory.mktemp("ksi-site")
    site = site_config(root, registry_mirrors={"docker.io": mirror.url})
    started: dict[str, Run] = {}
    try:
        started["yaml"] = submit(new_env(tmp_path_factory, "yaml", site), "workloads/ksi/workload-yaml.sh")
        env = new_env(tmp_path_factory, "sysbench", site)
        out = root / "sysbench-wrap.out"
        res = sh(["sbatch", "--parsable", f"--output={out}", "--wrap",
                  "kindslurm run workloads/ksi/workload-pod-sysbench.sh"], env=env.vars, cwd=str(REPO))
        assert res.returncode == 0, res.stderr
        started["sysbench"] = Run(env, res.stdout.strip().split(";")[0], out=out)
        started["pytorch"] = submit(new_env(tmp_path_factory, "pytorch", site), "workloads/ksi/workload-job-pytorch.sh")
        env = new_env(tmp_path_factory, "kubeapi", site)
        out = root / "kubeapi-srun.out"
        srun = subprocess.Popen(["srun", "-N1", *(["kindslurm"] if shutil.which("kindslurm") else KINDSLURM), "run",
                                 "workloads/ksi/workload-kube-api.sh"], env=env.vars, cwd=str(REPO),
                                stdout=out.open("w"), stderr=subprocess.STDOUT, text=True)
        started["kubeapi"] = Run(env, srun=srun, out=out)
        env = new_env(tmp_path_factory, "nginx", site)
        env.vars["K8S_PORT"] = str(chosen_port())  # KSI's way to choose it: in the submitting environment
        started["nginx"] = submit(env, "workloads/ksi/workload-pod-nginx.sh")
        # the podman store: an unchanged `image: NAME` naming a podman build, beside a pod whose image nobody has
        manifests = root / "manifests"
        manifests.mkdir()
        (manifests / "built.yaml").write_text(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: podman-built\nspec:\n  restartPolicy: Never\n"
            f"  containers:\n  - name: main\n    image: {podman_built}\n    command: [cat, /built.txt]\n")
        (manifests / "absent.yaml").write_text(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: absent\nspec:\n  restartPolicy: Never\n"
            "  containers:\n  - name: main\n    image: registry.invalid/nobody/has-this:1\n")
        started["stores"] = submit(new_env(tmp_path_factory, "stores", site_config(root / "manifests")),
                                   "--manifest", str(manifests / "built.yaml"), "--manifest", str(manifests / "absent.yaml"),
                                   "--timeout", "100s")
        # an archive: an unchanged manifest naming an upstream :latest image, no mirror, podman does not hold it
        (manifests / "sysbench.yaml").write_text(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sysbench\nspec:\n  restartPolicy: Never\n"
            "  containers:\n  - name: main\n    image: severalnines/sysbench\n"
            "    command: [sysbench, cpu, --time=2, run]\n")
        started["archive"] = submit(new_env(tmp_path_factory, "archive", site_config(root / "manifests")),
                                    "--manifest", str(manifests / "sysbench.yaml"), "--load-image", str(upstream_archive))
        yield started
    finally:
        for run in started.values():
            if run.srun is not None and run.srun.poll() is None:
                run.srun.terminate()
                run.srun.wait(timeout=120)
            elif run.job_id:
                sh(["scancel", run.job_id])
                wait_job_gone(run.job_id, timeout=180)
        out_dir = REPO / "kindslurm-out"  # the pytorch example's model directory, even if its test did not run
        if "pytorch" in started:
            for rec in started["pytorch"].env.records():
                if rec.get("cluster"):
                    shutil.rmtree(out_dir / f"kind-{rec['cluster']}", ignore_errors=True)
        if out_dir.is_dir() and not any(out_dir.iterdir()):
            out_dir.rmdir()


def done(run: Run, code: int = 0) -> dict:
    rec = run.finish()
    assert rec["exit_code"] == code, (rec, run.log(rec, "slurm.out") if Path(rec["job_dir"], "slurm.out").exists()
                                      else run.out.read_text() if run.out else "")
    assert_no_leftovers(run.env, rec["cluster"])
    return rec


def test_hello_job_from_yaml_with_the_context_flag(runs: dict[str, Run], mirror: Registry):
    rec = done(runs["yaml"])
    log = runs["yaml"].log(rec)
    assert "hello world" in log
    assert f"--context kind-{rec['cluster']}" in log  # set -x shows the context KSI scripts pass
    assert "/v2/library/alpine/manifests/latest" in mirror.served(), "alpine did not come through the mirror"


def test_sysbench_pod_through_sbatch_wrap_logs_followed(runs: dict[str, Run], mirror: Registry):
    rec = done(runs["sysbench"])
    assert rec["mode"] == "inline"  # sbatch --wrap 'kindslurm run ...' runs right in that job
    log = runs["sysbench"].log(rec)
    assert "events per second" in log and "kubectl logs -f sysbench-cpu" in log
    assert "/v2/severalnines/sysbench/manifests/latest" in mirror.served()


def test_pytorch_style_training_writes_its_model_to_the_submit_directory(runs: dict[str, Run], mirror: Registry):
    rec = done(runs["pytorch"])
    out = REPO / "kindslurm-out" / f"kind-{rec['cluster']}"
    try:
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["final_loss"] < metrics["first_loss"] and (out / "checkpoint.npz").stat().st_size > 0
        assert "checkpoint.npz" in runs["pytorch"].log(rec)  # the script's `ls -al` of the model directory
    finally:
        shutil.rmtree(out, ignore_errors=True)
    assert "/v2/bitnami/pytorch/manifests/2.0.1" in mirror.served()


def test_rest_api_with_the_token_through_srun(runs: dict[str, Run]):
    rec = done(runs["kubeapi"])
    assert rec["mode"] == "inline"  # srun -N1 kindslurm run: inside the allocation srun made
    log = runs["kubeapi"].log(rec)
    assert '"kind": "NamespaceList"' in log and '"name": "kube-system"' in log and '"kind": "PodList"' in log


def test_web_server_reached_from_the_host_through_the_k8s_port_the_user_chose(runs: dict[str, Run]):
    rec = done(runs["nginx"])
    log = runs["nginx"].log(rec)
    port = int(re.search(r"^K8S_PORT: (\d+)$", log, re.M).group(1))  # type: ignore[union-attr]
    assert port == int(runs["nginx"].env.vars["K8S_PORT"])
    assert "hello from nginx through K8S_PORT" in log
    assert f":{port}/: exit 0" in log
    slurm_out = runs["nginx"].log(rec, "slurm.out")
    assert f"K8S_PORT {port}: mapped to the control-plane node on 0.0.0.0" in slurm_out


def test_a_podman_build_serves_an_unchanged_manifest_and_a_missing_image_is_named(runs: dict[str, Run],
                                                                                   podman_built: str):
    rec = done(runs["stores"], code=73)
    out = runs["stores"].log(rec, "slurm.out")
    assert f"loading image localhost/{podman_built}:latest from podman's store (as {podman_built})" in out
    assert f"imagePullPolicy IfNotPresent for {podman_built}" in out
    built = Path(rec["job_dir"], "pods", "default", "podman-built", "main.log").read_text()
    assert built == "built by podman on the node\n"
    warning = [line for line in out.splitlines() if "pod default/absent cannot get image" in line]
    assert len(warning) == 1, out
    assert "registry.invalid/nobody/has-this:1" in warning[0]
    assert "registry_mirrors" in warning[0] and "--load-image" in warning[0]
    summary = json.loads(Path(rec["job_dir"], "summary.json").read_text())
    assert summary["manifests"] == {"Pod/podman-built -n default": "succeeded", "Pod/absent -n default": "running"}
    assert "workload timeout" in summary["reason"]


def test_an_archive_serves_an_unchanged_manifest_naming_an_upstream_latest_image(runs: dict[str, Run]):
    rec = done(runs["archive"])
    out = runs["archive"].log(rec, "slurm.out")
    assert "imagePullPolicy IfNotPresent for severalnines/sysbench" in out  # else Always would pull it again
    assert "cannot get image" not in out
    log = Path(rec["job_dir"], "pods", "default", "sysbench", "main.log").read_text()
    assert "events per second" in log
