"""KSI's workload-script contract and images without a registry, as pure
logic: K8S_PORT's lease (across processes, after SIGKILL, around busy ports),
where K8S_PORT comes from, registry mirror files, which images the manifests
name and how they are found in podman, the pull policy, the stuck-pull lines.
The real paths (a registry, podman, Slurm) are in tests/integration/test_ksi.py."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from kindslurm import config, k8sport, mirrors
from kindslurm.errors import NodeFullError, SpecError
from kindslurm.node import contract, images, pullwatch

from .fakes import FakeProvider


def free_range_port() -> int:
    """A NodePort-range port no run holds and nothing listens on."""
    lease = k8sport.lease("127.0.0.1")
    lease.release()
    return lease.port


# -- K8S_PORT's lease ----------------------------------------------------
def test_a_leased_port_is_not_leased_again_until_released():
    first = k8sport.lease("127.0.0.1")
    try:
        assert first.held and k8sport.held_by_a_run(first.port)
        with pytest.raises(NodeFullError) as e:
            k8sport.lease("127.0.0.1", first.port)
        assert e.value.retryable and str(first.port) in str(e.value)
        with pytest.raises(NodeFullError, match="no free K8S_PORT"):
            k8sport.lease("127.0.0.1", low=first.port, high=first.port)
    finally:
        first.release()
    assert not k8sport.held_by_a_run(first.port)
    k8sport.lease("127.0.0.1", first.port).release()


HOLDER = """
import sys, time
from kindslurm import k8sport
lease = k8sport.lease("127.0.0.1", int(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


def test_the_lease_holds_across_processes_and_the_kernel_frees_it_on_sigkill():
    port = free_range_port()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(port)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(NodeFullError):
            k8sport.lease("127.0.0.1", port)
        holder.send_signal(signal.SIGKILL)  # nothing of the holder runs: only the kernel can free it
        holder.wait(timeout=10)
        k8sport.lease("127.0.0.1", port).release()
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_port_another_program_listens_on_is_skipped_or_refused():
    port = free_range_port()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", port))
        busy.listen()
        with pytest.raises(NodeFullError, match=f"K8S_PORT {port} is taken"):
            k8sport.lease("127.0.0.1", port)
        with pytest.raises(NodeFullError, match="no free K8S_PORT") as e:
            k8sport.lease("127.0.0.1", low=port, high=port)
        assert e.value.retryable
        assert not k8sport.held_by_a_run(port)  # the refused lease gave its claim back


def test_a_random_start_spreads_parallel_runs():
    import random

    starts = [k8sport.lease("127.0.0.1", rng=random.Random(seed)) for seed in range(3)]
    try:
        assert len({s.port for s in starts}) == 3
    finally:
        for s in starts:
            s.release()


@pytest.mark.parametrize("value,problem", [("abc", "not a port number"), ("80", "outside 30000-32767"),
                                           ("32768", "outside"), ("", "not a port number"), (True, "not a port")])
def test_bad_ports_are_one_line_errors(value, problem):
    with pytest.raises(SpecError, match=problem) as e:
        k8sport.parse(value, "--k8s-port")
    assert "\n" not in str(e.value) and str(e.value).startswith("--k8s-port")


def test_port_address_must_be_an_ip():
    assert k8sport.check_address("0.0.0.0") == "0.0.0.0"
    with pytest.raises(SpecError, match="not an IP address"):
        k8sport.check_address("login1")


# -- where K8S_PORT comes from -------------------------------------------
def test_k8s_port_precedence_command_line_then_environment_then_files(no_site_config, monkeypatch, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("k8s_port: 30400\nk8s_port_address: 127.0.0.1\n")
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(site))
    monkeypatch.delenv("K8S_PORT", raising=False)
    cfg = config.load()
    assert cfg.k8s_port == 30400 and cfg.k8s_port_address == "127.0.0.1"
    user = tmp_path / "user.yaml"
    user.write_text("k8s_port: 30500\n")
    monkeypatch.setenv("KINDSLURM_CONFIG", str(user))
    assert config.load().k8s_port == 30500
    assert config.load({"k8s_port": "30700"}).k8s_port == 30700
    from kindslurm import api

    script = tmp_path / "w.sh"
    script.write_text("true\n")
    assert api.plan(str(script), local=True).spec.k8s_port == 30500
    monkeypatch.setenv("K8S_PORT", "30600")  # KSI's `: ${K8S_PORT:=...}`
    assert api.plan(str(script), local=True).spec.k8s_port == 30600
    assert api.plan(str(script), local=True, k8s_port="30700").spec.k8s_port == 30700
    monkeypatch.setenv("K8S_PORT", "http")
    with pytest.raises(SpecError, match="K8S_PORT in your environment 'http' is not a port number"):
        api.plan(str(script), local=True)
    assert config.load().k8s_port == 30500  # other commands (ls, status) never trip over it


def test_bad_port_settings_in_files_name_the_file(no_site_config, monkeypatch, tmp_path):
    monkeypatch.delenv("K8S_PORT", raising=False)
    user = tmp_path / "user.yaml"
    monkeypatch.setenv("KINDSLURM_CONFIG", str(user))
    for text, problem in (("k8s_port: 99\n", "outside 30000-32767"), ("k8s_port: \"x\"\n", "whole number"),
                          ("k8s_port_address: nowhere\n", "not an IP address")):
        user.write_text(text)
        with pytest.raises(SpecError, match=problem) as e:
            config.load()
        assert str(user) in str(e.value)


def test_bad_values_exit_64_before_anything_is_submitted(no_site_config, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from kindslurm.cli import main

    script = tmp_path / "w.sh"
    script.write_text("true\n")
    monkeypatch.delenv("K8S_PORT", raising=False)
    sbatch = tmp_path / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ntouch {tmp_path}/submitted\n")
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    res = CliRunner().invoke(main, ["run", str(script), "--k8s-port", "8080"])
    assert res.exit_code == 64 and "--k8s-port 8080 is outside 30000-32767" in res.output
    monkeypatch.setenv("K8S_PORT", "abc")
    res = CliRunner().invoke(main, ["run", str(script)])
    assert res.exit_code == 64 and "K8S_PORT in your environment 'abc'" in res.output
    assert not (tmp_path / "submitted").exists()


# -- registry mirrors ----------------------------------------------------
def test_mirrors_render_one_hosts_toml_per_registry(tmp_path):
    d = mirrors.write({"docker.io": "http://10.0.0.1:5000/", "ghcr.io": "https://mirror.example"}, tmp_path / "certs.d")
    docker = (d / "docker.io" / "hosts.toml").read_text()
    assert 'server = "https://registry-1.docker.io"' in docker
    assert '[host."http://10.0.0.1:5000"]' in docker and 'capabilities = ["pull", "resolve"]' in docker
    assert 'server = "https://ghcr.io"' in (d / "ghcr.io" / "hosts.toml").read_text()
    import tomllib

    assert tomllib.loads(docker)["host"]["http://10.0.0.1:5000"]["capabilities"] == ["pull", "resolve"]


@pytest.mark.parametrize("mapping,problem", [({"Docker.IO": "http://x"}, "not a registry host"),
                                             ({"../etc": "http://x"}, "not a registry host"),
                                             ({"docker.io": "ftp://x"}, "not an http"),
                                             ({"docker.io": "http://"}, "not an http"),
                                             ({"docker.io": 'http://x"]\n[evil'}, "not an http"),
                                             ({"docker.io": 5000}, "must be a URL")])
def test_bad_mirrors_are_refused(mapping, problem):
    with pytest.raises(SpecError, match=problem):
        mirrors.check(mapping)


def test_site_and_user_mirrors_merge(no_site_config, monkeypatch, tmp_path):
    site = tmp_path / "site.yaml"
    site.write_text("registry_mirrors:\n  docker.io: http://site:5000\n  ghcr.io: http://site:5001\n")
    user = tmp_path / "user.yaml"
    user.write_text("registry_mirrors:\n  docker.io: http://mine:5000\n")
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(site))
    monkeypatch.setenv("KINDSLURM_CONFIG", str(user))
    assert config.load().registry_mirrors == {"docker.io": "http://mine:5000", "ghcr.io": "http://site:5001"}
    user.write_text("registry_mirrors: [http://x]\n")
    with pytest.raises(SpecError, match="mapping of registry host to mirror URL"):
        config.load()
    user.write_text("registry_mirrors:\n  docker.io: login1\n")
    with pytest.raises(SpecError, match=f"{user}.*not an http"):
        config.load()


# -- images the manifests name --------------------------------------------
@pytest.mark.parametrize("ref,full", [
    ("alpine", "docker.io/library/alpine:latest"),
    ("alpine:3.19", "docker.io/library/alpine:3.19"),
    ("severalnines/sysbench", "docker.io/severalnines/sysbench:latest"),
    ("bitnami/pytorch:2.0.1", "docker.io/bitnami/pytorch:2.0.1"),
    ("docker.io/alpine", "docker.io/library/alpine:latest"),
    ("index.docker.io/library/nginx", "docker.io/library/nginx:latest"),
    ("localhost/kindslurm/busybox:1", "localhost/kindslurm/busybox:1"),
    ("login1:5000/team/app", "login1:5000/team/app:latest"),
    ("ghcr.io/org/app@sha256:" + "a" * 64, "ghcr.io/org/app@sha256:" + "a" * 64),
])
def test_names_are_qualified_as_a_container_runtime_does(ref, full):
    assert images.qualify(ref) == full


def test_images_are_found_in_every_kind_of_pod_template():
    docs = list(yaml.safe_load_all("""
apiVersion: v1
kind: Pod
spec: {initContainers: [{name: i, image: busybox}], containers: [{name: a, image: alpine}]}
---
apiVersion: batch/v1
kind: CronJob
spec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c, image: "severalnines/sysbench"}]}}}}}
---
apiVersion: apps/v1
kind: Deployment
spec: {template: {spec: {containers: [{name: d, image: alpine}, {name: e, image: "bitnami/pytorch:2.0.1"}]}}}
---
apiVersion: example.com/v1
kind: Trainer
spec: {workers: {template: {spec: {containers: [{name: w, image: localhost/trainer:1}]}}}}
---
apiVersion: v1
kind: ConfigMap
data: {containers: "image: not-an-image"}
"""))
    assert images.named(docs) == ["busybox", "alpine", "severalnines/sysbench", "bitnami/pytorch:2.0.1",
                                  "localhost/trainer:1"]
    assert images.named([]) == []


def test_a_podman_build_serves_the_short_name_and_the_cluster_is_asked_first():
    held = {"localhost/myimg:latest", "docker.io/library/alpine:3.19", "localhost/kindslurm/busybox:1"}
    loads = images.plan(["myimg", "alpine:3.19", "alpine", "localhost/kindslurm/busybox:1", "ghcr.io/x/y:1"], held,
                        in_nodes={"localhost/kindslurm/busybox:1"})
    assert loads == [images.Load("myimg", "localhost/myimg:latest", "docker.io/library/myimg:latest"),
                     images.Load("alpine:3.19", "docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19")]
    assert loads[0].aliased and not loads[1].aliased
    assert images.podman_candidates("team/app:2") == ["docker.io/team/app:2", "localhost/team/app:2"]
    assert images.podman_candidates("ghcr.io/x/y@sha256:" + "b" * 64) == []


def test_loaded_images_get_if_not_present_where_the_manifest_sets_no_policy():
    doc = {"kind": "Pod", "spec": {"containers": [
        {"name": "a", "image": "myimg"}, {"name": "b", "image": "myimg", "imagePullPolicy": "Always"},
        {"name": "c", "image": "alpine"}]}}
    assert images.prefer_local(doc, {"myimg"}) == ["myimg"]
    policies = [c.get("imagePullPolicy") for c in doc["spec"]["containers"]]
    assert policies == ["IfNotPresent", "Always", None]
    assert images.is_latest("myimg") and images.is_latest("a/b:latest") and not images.is_latest("a:1")


def write_manifest(tmp_path: Path, text: str) -> str:
    p = tmp_path / "m.yaml"
    p.write_text(text)
    return str(p)


def test_loading_from_podman_saves_loads_and_aliases_through_the_provider(tmp_path):
    provider = FakeProvider()
    provider.podman_store = {"localhost/myimg:latest", "localhost/kindslurm/busybox:1"}
    provider.in_nodes["c"] = set()
    m = write_manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
                                 "  - {name: a, image: myimg}\n  - {name: b, image: localhost/kindslurm/busybox:1}\n"
                                 "  - {name: c, image: alpine}\n")
    said: list[str] = []
    archive = tmp_path / "imgs.tar"
    loaded = images.load_from_podman(provider, "c", [m], archive, io.StringIO(), said.append)
    assert loaded == {"myimg", "localhost/kindslurm/busybox:1"}
    assert provider.calls == ["held_images", "node_images c", "save localhost/kindslurm/busybox:1 localhost/myimg:latest",
                              f"load {archive}", "alias c localhost/myimg:latest=docker.io/library/myimg:latest"]
    assert not archive.exists()
    assert said[0].startswith("loading image localhost/myimg:latest from podman's store (as myimg)")


def test_no_node_is_asked_when_no_image_or_none_podman_holds(tmp_path):
    provider = FakeProvider()
    m = write_manifest(tmp_path, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert images.load_from_podman(provider, "c", [m], tmp_path / "a.tar", io.StringIO(), print) == set()
    assert provider.calls == []
    m = write_manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: alpine}]}\n")
    assert images.load_from_podman(provider, "c", [m], tmp_path / "a.tar", io.StringIO(), print) == set()
    assert provider.calls == ["held_images"]


# -- stuck pulls -------------------------------------------------------------
def test_a_stuck_pull_is_said_once_per_pod_and_image_with_the_three_fixes():
    seen: set = set()
    w = pullwatch.Waiting("ns", "p", "nope:1", "ErrImagePull", False, 5)
    lines = pullwatch.stuck([w, pullwatch.Waiting("ns", "p", "nope:1", "ImagePullBackOff", False, 9)], seen)
    assert len(lines) == 1
    line = lines[0]
    assert "pod ns/p cannot get image nope:1 (ErrImagePull)" in line and "\n" not in line
    assert "registry_mirrors" in line and "podman" in line and "--load-image" in line
    assert pullwatch.stuck([w], seen) == []
    creating = pullwatch.Waiting("ns", "q", "slow:1", "ContainerCreating", False, 30)
    assert pullwatch.stuck([creating], seen) == []
    assert "still ContainerCreating after 61s" in pullwatch.stuck([creating.__class__(**{**creating.__dict__, "age": 61})], seen)[0]
    pulled = pullwatch.Waiting("ns", "r", "big:1", "ContainerCreating", True, 600)  # image there: volumes, not a pull
    assert pullwatch.stuck([pulled], seen) == []


def test_waiting_containers_are_read_from_the_pod():
    now = datetime.now(timezone.utc)
    cs = SimpleNamespace(image="alpine", image_id="", state=SimpleNamespace(waiting=SimpleNamespace(reason="ImagePullBackOff")))
    running = SimpleNamespace(image="b", image_id="sha", state=SimpleNamespace(waiting=None))
    pod = SimpleNamespace(metadata=SimpleNamespace(namespace="d", name="p", creation_timestamp=now - timedelta(seconds=70)),
                          status=SimpleNamespace(init_container_statuses=None, container_statuses=[cs, running]))
    (w,) = pullwatch.waiting_of(pod, now.timestamp())
    assert (w.pod, w.image, w.reason, w.has_image) == ("p", "alpine", "ImagePullBackOff", False) and 69 < w.age < 71


# -- the environment ---------------------------------------------------------
def test_the_token_lasts_until_the_jobs_end_plus_five_minutes_and_at_least_ten():
    assert contract.token_seconds(1000.0, 1000.0 + 3600, 60) == 3900
    assert contract.token_seconds(1000.0, None, 900) == 1200
    assert contract.token_seconds(1000.0, 1000.0 + 10, 60) == 600


def test_the_environment_names_the_context_and_the_bare_cluster(tmp_path):
    env = contract.environment("ks-u-7", tmp_path / "k.yaml", "https://127.0.0.1:4000", "tok", 31000)
    assert env["K8S_CLUSTER_NAME"] == "kind-ks-u-7"
    assert env["KIND_CLUSTER_NAME"] == env["KINDSLURM_CLUSTER"] == "ks-u-7"
    assert (env["K8S_CLUSTER_API"], env["K8S_CLUSTER_API_TOKEN"], env["K8S_PORT"]) == ("https://127.0.0.1:4000", "tok", "31000")
    assert "K8S_PORT" not in contract.environment("c", tmp_path, "u", "t", None)


def test_the_api_url_can_be_read_from_the_kubeconfig(tmp_path):
    kc = tmp_path / "k.yaml"
    kc.write_text(json.dumps({"clusters": [{"name": "kind-c", "cluster": {"server": "https://127.0.0.1:4321"}}],
                              "contexts": [{"name": "kind-c", "context": {"cluster": "kind-c", "user": "kind-c"}}]}))
    assert contract.kubeconfig_server(kc, "kind-c") == "https://127.0.0.1:4321"
    assert contract.kubeconfig_server(kc, "kind-x") is None
    assert contract.kubeconfig_server(tmp_path / "none", "kind-c") is None


# -- in the run's order ------------------------------------------------------
def test_the_workload_gets_the_contract_and_k8s_port_is_released_only_after_the_delete(no_site_config, tmp_path, mocker,
                                                                                       monkeypatch):
    from kindslurm import exitcodes
    from kindslurm.node.lifecycle import Lifecycle
    from kindslurm.spec import JobSpec

    mocker.patch("kindslurm.node.preflight.run_checks", return_value=[])
    mocker.patch("kindslurm.node.capacity.check", return_value=[])
    mocker.patch("kindslurm.kube.Kube")
    mocker.patch("kindslurm.node.contract.admin_token", return_value="the-token")
    monkeypatch.setenv("K8S_CLUSTER_NAME", "from-outside")  # the contract wins over what the job inherited
    script = tmp_path / "w.sh"
    script.write_text('env | grep -E "^(K8S_|KIND_CLUSTER_NAME|KINDSLURM_CLUSTER|KUBECONFIG)" | sort > "$KINDSLURM_JOB_DIR/env"\n')
    spec = JobSpec(run_id="ksi", mode="local", prefix="ks-ksi", user="t", submit_dir=str(tmp_path),
                   job_dir=str(tmp_path / "job"), script=str(script), k8s_port_address="127.0.0.1")
    provider = FakeProvider()
    held_at_delete = []
    real_delete = provider.delete

    def delete(name, kubeconfig=None, timeout=60.0):  # type: ignore[no-untyped-def]
        held_at_delete.append(lc.ksi.lease is not None and k8sport.held_by_a_run(lc.ksi.lease.port))
        return real_delete(name, kubeconfig, timeout)

    provider.delete = delete  # type: ignore[method-assign]
    out = io.StringIO()
    lc = Lifecycle(spec, provider=provider, out=out)
    assert lc.run() == exitcodes.OK, out.getvalue()
    env = dict(line.split("=", 1) for line in (tmp_path / "job" / "env").read_text().splitlines())
    port = lc.ksi.lease.port if lc.ksi.lease else None
    assert env == {"K8S_CLUSTER_NAME": f"kind-{lc.cluster}", "KIND_CLUSTER_NAME": lc.cluster,
                   "KINDSLURM_CLUSTER": lc.cluster, "K8S_CLUSTER_API": "https://127.0.0.1:6443",
                   "K8S_CLUSTER_API_TOKEN": "the-token", "K8S_PORT": str(port), "KUBECONFIG": str(lc.kubeconfig)}
    assert f"hostPort: {port}" in lc.kind_config and "listenAddress: 127.0.0.1" in lc.kind_config
    assert held_at_delete == [True]
    assert port is not None and not k8sport.held_by_a_run(port)


def _tar(path: Path, name: str, doc: object) -> str:
    import tarfile

    data = json.dumps(doc).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("blob.tar")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_archives_name_their_images_and_serve_the_manifests_names(tmp_path):
    docker = _tar(tmp_path / "d.tar", "manifest.json",
                  [{"Config": "c.json", "RepoTags": ["docker.io/severalnines/sysbench:latest"], "Layers": []}])
    oci = _tar(tmp_path / "o.tar", "index.json", {"manifests": [
        {"annotations": {"io.containerd.image.name": "docker.io/bitnami/pytorch:2.0.1"}},
        {"annotations": {"org.opencontainers.image.ref.name": "2.0.1"}}]})
    assert images.archive_names(docker) == {"docker.io/severalnines/sysbench:latest"}
    assert images.archive_names(oci) == {"docker.io/bitnami/pytorch:2.0.1"}
    assert images.archive_names(str(tmp_path / "missing.tar")) == set()
    (tmp_path / "junk.tar").write_text("not a tar")
    assert images.archive_names(str(tmp_path / "junk.tar")) == set()
    m = write_manifest(tmp_path, "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
                                 "  - {name: a, image: severalnines/sysbench}\n  - {name: b, image: alpine}\n")
    assert images.from_archives([m], [docker, oci]) == {"severalnines/sysbench"}
