"""Every way a run can end, through the real local Slurm with real clusters:
each leaves no container, volume, network, kubeconfig or live record.
(Normal end, workload failure and scancel are in test_core_run.py.)"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from .conftest import Env, assert_no_leftovers, host_sysctls, kind_containers, kind_volumes, wait_job_gone

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]


def summary(env: Env, job_id: str) -> dict:
    return json.loads((Path(env.record(job_id)["job_dir"]) / "summary.json").read_text())


def test_manifest_apply_failure(env: Env, tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: Not_A_Valid_Name\nspec:\n  containers: []\n")
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\necho workload-ran\n")
    res = env.ks("run", str(script), "--manifest", str(bad), "--wait")
    assert res.returncode == 72, res.stdout + res.stderr
    job_id = res.stdout.split()[2]
    s = summary(env, job_id)
    assert s["status"] == "failed" and "Pod/Not_A_Valid_Name was rejected" in s["reason"]
    assert "workload-ran" not in (Path(env.record(job_id)["job_dir"]) / "slurm.out").read_text()
    wait_job_gone(job_id)
    assert_no_leftovers(env, env.record(job_id)["cluster"])


def test_cluster_create_failure_removes_the_partial_cluster(env: Env, tmp_path: Path):
    """The API port is taken, so the control plane cannot start while a worker can."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    port = sock.getsockname()[1]
    cfg = tmp_path / "kind.yaml"
    cfg.write_text(f"kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n  apiServerPort: {port}\n")
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\necho workload-ran\n")
    try:
        res = env.ks("run", str(script), "--kind-config", str(cfg), "--workers", "1", "--wait")
    finally:
        sock.close()
    assert res.returncode == 71, res.stdout + res.stderr
    job_id = res.stdout.split()[2]
    s = summary(env, job_id)
    assert s["status"] == "failed" and "kind create cluster failed" in s["reason"]
    assert "ERROR" in (Path(env.record(job_id)["job_dir"]) / "kind.log").read_text()
    wait_job_gone(job_id)
    assert_no_leftovers(env, env.record(job_id)["cluster"])


def test_time_limit_gives_pods_their_grace_then_tears_down(env: Env, tmp_path: Path):
    pod = tmp_path / "graceful.yaml"
    pod.write_text(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: graceful\nspec:\n  terminationGracePeriodSeconds: 15\n"
        "  containers:\n  - name: main\n    image: localhost/kindslurm/busybox:1\n"
        "    command: [sh, -c, \"trap 'echo got SIGTERM, saving state; exit 0' TERM; echo started; "
        "while true; do sleep 1; done\"]\n"
    )
    script = tmp_path / "w.sh"
    script.write_text(f"#!/bin/bash\nkubectl apply -f {pod}\nkubectl wait --for=condition=Ready pod/graceful --timeout=120s\n"
                      "echo pod-ready\nsleep 600\n")
    res = env.ks("run", str(script), "--time", "3", "--wait", timeout=400)
    assert res.returncode == 74, res.stdout + res.stderr
    job_id = res.stdout.split()[2]
    s = summary(env, job_id)
    assert s["status"] == "timeout" and s["time_limit_reached"] is True
    job_dir = Path(env.record(job_id)["job_dir"])
    assert "pod-ready" in (job_dir / "workload.log").read_text(), "the warning came before the workload ran"
    log = (job_dir / "pods" / "default" / "graceful" / "main.log").read_text()
    assert "started" in log and "got SIGTERM, saving state" in log
    wait_job_gone(job_id)
    assert_no_leftovers(env, env.record(job_id)["cluster"])


def test_sigkilled_batch_step_is_cleaned_by_the_epilog_and_gc(env: Env, tmp_path: Path):
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\nexec sleep 600\n")
    before = host_sysctls()
    res = env.ks("run", str(script), "--parsable")
    assert res.returncode == 0, res.stderr
    job_id = res.stdout.strip()
    rec = env.wait_phase(job_id, ("running",))
    os.kill(rec["pid"], signal.SIGKILL)  # no teardown can run in the node side now
    wait_job_gone(job_id)
    # the Epilog (setup/epilog.sh, installed by setup/install.sh) ran `kindslurm gc --job`
    epilog_log = Path("/var/log/slurm/kindslurm-epilog.log")
    assert epilog_log.exists() and f"{rec['cluster']}" in epilog_log.read_text(), "the Epilog did not collect the cluster"
    assert kind_containers(rec["cluster"]) == [] and kind_volumes(rec["cluster"]) == []
    res = env.ks("gc")  # the user's own gc then drops the kubeconfig and record, and restores host sysctls
    assert res.returncode == 0, res.stdout + res.stderr
    assert_no_leftovers(env, rec["cluster"])
    assert host_sysctls() == before, "host sysctls the killed cluster's kubelet changed were not restored"
    assert env.records() == [], "gc keeps the record of a run that died in a live phase"


def test_eight_parallel_jobs_are_isolated(env: Env, tmp_path: Path):
    script = tmp_path / "who.sh"
    script.write_text(
        "#!/bin/bash\nset -euo pipefail\n"
        "echo \"KUBECONFIG=$KUBECONFIG\"\necho \"CLUSTER=$K8S_CLUSTER_NAME\"\n"
        "echo \"SERVER=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')\"\n"
        "echo \"NODES=$(kubectl get nodes -o jsonpath='{.items[*].metadata.name}')\"\n"
        "echo \"CONTEXTS=$(kubectl config get-contexts -o name | tr '\\n' ' ')\"\n"
        # KSI's contract: the context flag, the API URL, the token, K8S_PORT
        "echo \"BY_CONTEXT=$(kubectl --context \"$K8S_CLUSTER_NAME\" get nodes -o name)\"\n"
        "echo \"KIND_CLUSTER=$KIND_CLUSTER_NAME\"\necho \"API=$K8S_CLUSTER_API\"\necho \"PORT=$K8S_PORT\"\n"
        "echo \"TOKEN_HTTP=$(curl -sS --insecure -o /dev/null -w '%{http_code}' "
        "-H \"Authorization: Bearer $K8S_CLUSTER_API_TOKEN\" \"$K8S_CLUSTER_API/api/v1/namespaces/kube-system/pods\")\"\n"
        "python3 -c 'import base64, json, os, time\n"
        "p = os.environ[\"K8S_CLUSTER_API_TOKEN\"].split(\".\")[1]\n"
        "c = json.loads(base64.urlsafe_b64decode(p + \"=\" * (-len(p) % 4)))\n"
        "print(\"TOKEN_SUB=\" + c[\"sub\"]); print(\"TOKEN_LEFT=%d\" % (c[\"exp\"] - time.time()))'\n"
    )
    names = [None] * 5 + ["exp", "exp", "x" * 32]
    jobs = []
    for name in names:
        args = ["run", str(script), "--parsable", "--time", "15"] + (["--name", name] if name else [])
        res = env.ks(*args)
        assert res.returncode == 0, res.stderr
        jobs.append(res.stdout.strip())
    deadline = time.monotonic() + 600
    for j in jobs:
        wait_job_gone(j, timeout=max(1, deadline - time.monotonic()))
    seen = {}
    for j, name in zip(jobs, names):
        rec = env.record(j)
        assert rec["phase"] == "completed" and rec["exit_code"] == 0, rec
        info = dict(line.split("=", 1) for line in (Path(rec["job_dir"]) / "workload.log").read_text().splitlines() if "=" in line)
        assert rec["cluster"] == f"{name or rec['prefix']}-{j}"
        assert info["KUBECONFIG"] == rec["kubeconfig"]
        assert info["NODES"] == f"{rec['cluster']}-control-plane"
        assert info["CONTEXTS"].split() == [f"kind-{rec['cluster']}"]
        assert info["CLUSTER"] == f"kind-{rec['cluster']}" and info["KIND_CLUSTER"] == rec["cluster"]
        assert info["BY_CONTEXT"] == f"node/{rec['cluster']}-control-plane"
        assert info["API"] == info["SERVER"]
        assert info["TOKEN_HTTP"] == "200" and info["TOKEN_SUB"] == "system:serviceaccount:kube-system:admin-user"
        assert 0 < int(info["TOKEN_LEFT"]) <= 15 * 60 + 300, "the token outlives the job's time limit + 5 min"
        assert 30000 <= int(info["PORT"]) <= 32767
        seen[j] = info
    for key in ("KUBECONFIG", "CLUSTER", "SERVER", "PORT"):
        values = [info[key] for info in seen.values()]
        assert len(set(values)) == len(values), f"{key} clash: {values}"
    for j in jobs:
        assert_no_leftovers(env, env.record(j)["cluster"])
