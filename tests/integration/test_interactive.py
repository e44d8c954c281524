"""Interactive clusters for real: `up` boots a cluster in a Slurm job and holds
it, kubectl reaches it on its node, through the srun tunnel and from a
"laptop" over Debian's OpenSSH (TLS verified each way, another CA refused),
`down` leaves nothing; a duplicate name is refused with nothing submitted,
scancel tears a held cluster down, and gc cleans up after a SIGKILL.

The read-only tests share one held cluster (module fixture); its teardown
is `down` and checks that nothing is left."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from .conftest import Env, assert_no_leftovers, kind_containers, kind_volumes, sh, slurm_jobs, wait_job_gone
from .sshd import SSHServer

pytestmark = [pytest.mark.cluster, pytest.mark.slurm, pytest.mark.usefixtures("cluster_host")]


@pytest.fixture(scope="module")
def login(tmp_path_factory: pytest.TempPathFactory):
    """The login node's user (this host, own directories) and an sshd in front of it."""
    env = Env(tmp_path_factory.mktemp("login"))
    xdg = {k: env.vars[k] for k in ("XDG_STATE_HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")}
    server = SSHServer(xdg)
    yield env, server
    server.stop()


@pytest.fixture(scope="module")
def laptop(login, tmp_path_factory: pytest.TempPathFactory) -> Env:
    env = Env(tmp_path_factory.mktemp("laptop"))
    login[1].laptop_config(Path(env.vars["XDG_CONFIG_HOME"]) / "kindslurm" / "config.yaml")
    return env


def tunnels(env: Env) -> list[Path]:
    d = Path(env.vars["XDG_STATE_HOME"]) / "kindslurm" / "tunnels"
    return sorted(d.iterdir()) if d.is_dir() else []


def tunnel_pids(env: Env, cluster: str = "") -> list[int]:
    return [json.loads(p.read_text())["pid"] for p in tunnels(env) if p.suffix == ".json" and p.name.startswith(cluster)]


def gone(env: Env, rec: dict) -> None:
    """Nothing of this run's cluster is left (other runs of the env may live on)."""
    assert kind_containers(rec["cluster"]) == [] and kind_volumes(rec["cluster"]) == []
    assert not Path(rec["kubeconfig"]).exists() and not [p for p in tunnels(env) if p.name.startswith(rec["cluster"] + "@")]
    assert all(r["phase"] != "held" for r in env.records() if r["run_id"] == rec["run_id"])


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cancel_leftovers(env: Env, name: str) -> None:
    """After a failure: no job of this name may hold its cluster until the time limit."""
    for r in env.records():
        if r["prefix"] == name and r.get("job_id") and r["phase"] not in ("completed", "failed", "cancelled", "timeout"):
            sh(["scancel", r["job_id"]])
            wait_job_gone(r["job_id"])


def wait_for(what: str, check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def kubectl(kubeconfig: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
    return sh(["kubectl", "--kubeconfig", str(kubeconfig), "--request-timeout=60s", *args], timeout=120)


def other_ca() -> str:
    """A CA that did not sign the cluster's certificate."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-cluster-ca")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode()


@pytest.fixture(scope="module")
def held(login, laptop):
    """One held cluster for the tests that only read from it; `down` at the end must leave nothing."""
    env, _ = login
    name = f"ks-dev{secrets.token_hex(2)}"  # ks-: the session's safety net deletes such clusters if all else fails
    try:
        res = env.ks("up", "--name", name, "--time", "15", "--cpus", "2", timeout=400)
        assert res.returncode == 0, res.stdout + res.stderr
        rec = next(r for r in env.records() if r["prefix"] == name)
    except BaseException:
        cancel_leftovers(env, name)
        raise
    yield {"name": name, "up": res, **rec}
    res = env.ks("down", name, timeout=400)
    assert res.returncode == 0 and f"cluster {rec['cluster']} is down" in res.stdout, res.stdout + res.stderr
    wait_job_gone(rec["job_id"])
    done = env.record(rec["run_id"])
    assert done["phase"] == "completed" and done["exit_code"] == 0 and "kindslurm down" in done["reason"]
    assert_no_leftovers(env, rec["cluster"])
    wait_for("the tunnels to end with the cluster", lambda: not tunnels(env) and not tunnels(laptop))
    assert not [p for p in tunnel_pids(env) + tunnel_pids(laptop) if alive(p)]


def test_up_returns_a_ready_cluster_listed_with_its_time_left(held, login):
    env, _ = login
    assert f"cluster {held['name']} is up: job {held['job_id']}" in held["up"].stdout
    assert f'kubectl --kubeconfig "$(kindslurm kubeconfig {held["name"]})" get nodes' in held["up"].stdout
    assert held["cluster"] == f"{held['name']}-{held['job_id']}" and held["phase"] == "held" and held["ends"] > time.time()
    listed = env.ks("ls")
    row = next(line for line in listed.stdout.splitlines() if held["cluster"] in line)
    assert "RUNNING" in row and re.search(r"held, \d+m\d\ds left", row), listed.stdout
    kc = env.ks("kubeconfig", held["name"]).stdout.strip()
    assert kc == held["kubeconfig"] and Path(kc).stat().st_mode & 0o777 == 0o600  # on the cluster's node: its own
    nodes = kubectl(kc, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0 and " Ready " in nodes.stdout, nodes.stderr


def test_a_second_up_of_the_name_is_refused_and_nothing_is_submitted(held, login, laptop):
    env, _ = login
    jobs, runs = slurm_jobs(), len(env.records())
    for who in (env, laptop):
        res = who.ks("up", "--name", held["name"], "--no-wait", timeout=120)
        assert res.returncode == 64, res.stdout + res.stderr
        assert f"already up: job {held['job_id']} (cluster {held['cluster']}, held)" in res.stderr
    assert slurm_jobs() == jobs and len(env.records()) == runs


def test_kubectl_through_the_srun_tunnel_verifies_tls(held, login, tmp_path: Path):
    env, _ = login
    res = env.ks("kubeconfig", held["name"], "--tunnel")
    assert res.returncode == 0, res.stderr
    kc = Path(res.stdout.strip())
    assert kc.parent.name == "tunnels" and kc.stat().st_mode & 0o777 == 0o600
    doc, own = yaml.safe_load(kc.read_text()), yaml.safe_load(Path(held["kubeconfig"]).read_text())
    server = doc["clusters"][0]["cluster"]["server"]
    assert server.startswith("https://127.0.0.1:") and server != own["clusters"][0]["cluster"]["server"]
    assert doc["clusters"][0]["cluster"]["certificate-authority-data"] == own["clusters"][0]["cluster"]["certificate-authority-data"]
    assert "insecure-skip-tls-verify" not in kc.read_text()
    nodes = kubectl(kc, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0 and f"{held['cluster']}-control-plane" in nodes.stdout and " Ready " in nodes.stdout, nodes.stderr
    again = env.ks("kubeconfig", held["name"], "--tunnel")
    assert again.stdout.strip() == str(kc) and len(tunnel_pids(env)) == 1  # the running tunnel is reused
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = other_ca()
    wrong = tmp_path / "other-ca.yaml"
    wrong.write_text(yaml.safe_dump(doc))
    refused = kubectl(wrong, "get", "nodes")
    assert refused.returncode != 0 and "certificate signed by unknown authority" in refused.stderr, refused.stderr


def test_from_a_laptop_over_ssh_with_tls_verified_end_to_end(held, laptop, tmp_path: Path):
    listed = laptop.ks("ls")
    assert listed.returncode == 0 and held["cluster"] in listed.stdout and "held, " in listed.stdout, listed.stderr
    res = laptop.ks("kubeconfig", held["name"], "--tunnel", timeout=120)
    assert res.returncode == 0, res.stderr
    kc = Path(res.stdout.strip())
    assert kc.is_relative_to(Path(laptop.vars["XDG_STATE_HOME"])) and kc.stat().st_mode & 0o777 == 0o600
    nodes = kubectl(kc, "get", "nodes", "--no-headers")
    assert nodes.returncode == 0 and " Ready " in nodes.stdout, nodes.stderr
    doc = yaml.safe_load(kc.read_text())
    doc["clusters"][0]["cluster"]["certificate-authority-data"] = other_ca()
    wrong = tmp_path / "other-ca.yaml"
    wrong.write_text(yaml.safe_dump(doc))
    assert "certificate signed by unknown authority" in kubectl(wrong, "get", "nodes").stderr


def test_scancel_tears_a_held_cluster_down(login, laptop):
    """Brought up from the laptop (the login node's kindslurm runs `up`), cancelled with scancel there."""
    env, _ = login
    name = f"ks-cx{secrets.token_hex(2)}"
    try:
        res = laptop.ks("up", "--name", name, "--time", "10", timeout=400)
        assert res.returncode == 0, res.stdout + res.stderr
        assert f"cluster {name} is up" in res.stdout and f"kindslurm down {name}" in res.stdout
        rec = next(r for r in env.records() if r["prefix"] == name)
        assert rec["phase"] == "held" and kind_containers(rec["cluster"])
        assert sh(["scancel", rec["job_id"]]).returncode == 0
        wait_job_gone(rec["job_id"])
    finally:
        cancel_leftovers(env, name)
    done = env.record(rec["run_id"])
    assert done["phase"] == "cancelled" and done["exit_code"] == 143, done
    gone(env, rec)
    res = laptop.ks("down", name)
    assert res.returncode == 0 and "already ended (cancelled)" in res.stdout + res.stderr, res.stdout + res.stderr


def test_gc_after_a_sigkilled_up_job_leaves_nothing(login):
    env, _ = login
    env.vars["KINDSLURM_GC_GRACE"] = "0"
    name = f"ks-kx{secrets.token_hex(2)}"
    try:
        res = env.ks("up", "--name", name, "--time", "10", "--no-wait")
        assert res.returncode == 0, res.stderr
        job_id = res.stdout.strip()
        rec = env.wait_phase(job_id, ("held",), timeout=300)
        kc = env.ks("kubeconfig", name, "--tunnel")
        assert kc.returncode == 0, kc.stderr
        [tunnel_pid] = tunnel_pids(env, rec["cluster"] + "@")
        os.kill(rec["pid"], signal.SIGKILL)  # the node side: no teardown can run
        os.kill(tunnel_pid, signal.SIGKILL)  # and its tunnel: its files stay for gc
        wait_job_gone(job_id)
    finally:
        cancel_leftovers(env, name)
    res = env.ks("gc")
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(rf"tunnel\s+{re.escape(rec['cluster'])}@", res.stdout), res.stdout
    gone(env, rec)
    assert not alive(tunnel_pid) and not alive(rec["pid"])
