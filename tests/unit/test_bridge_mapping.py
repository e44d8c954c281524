"""Pods as run options, and as the inner cluster's manifest: pure logic of the bridge."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from kindslurm.bridge import config as bcfg
from kindslurm.bridge import manifest, mapping
from kindslurm.errors import PodNotReady, PodRefused, SpecError

CFG = bcfg.load({"flavors": {"small": {"cpus": 2, "mem": "4G", "time": "02:00:00", "sbatch_args": ["--exclusive"]},
                             "gpu": {"cpus": 8, "mem": "32G", "gpus": 1, "uses_gpu": True,
                                     "sbatch_args": ["--constraint=a100"]}},
                 "default_flavor": "small", "cluster_mem": "2G", "image_archive_prefixes": ["/images"],
                 "node_images": ["img:1"]})


def pod(containers: list[dict[str, Any]] | None = None, annotations: dict[str, str] | None = None,
        **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "train", "namespace": "default", "uid": "0f0e0d0c-aaaa-bbbb-cccc-111122223333",
                         "annotations": annotations or {}},
            "spec": {"containers": containers or [{"name": "main", "image": "busybox"}], **spec}}


def limits(**values: str) -> dict[str, Any]:
    return {"resources": {"limits": values}}


@pytest.mark.parametrize("text,value", [("500m", 0.5), ("2", 2), ("1.5", 1.5), ("128Mi", 128 * 2**20),
                                        ("1G", 1e9), ("1e3", 1000), ("2Ki", 2048)])
def test_quantities_read_as_kubernetes_writes_them(text: str, value: float) -> None:
    assert mapping.quantity(text) == pytest.approx(value)


def test_a_bad_quantity_is_refused() -> None:
    with pytest.raises(PodRefused, match="not a Kubernetes quantity"):
        mapping.quantity("lots")


def test_pod_limits_win_over_the_flavor_and_memory_adds_the_kind_node() -> None:
    req = mapping.request(pod([{"name": "a", "image": "x", **limits(cpu="2500m", memory="1Gi")},
                               {"name": "b", "image": "x", "resources": {"requests": {"cpu": "1", "memory": "512Mi"}}}]),
                          "debug", CFG, "01:00:00")
    assert req.options["cpus"] == 4  # 2.5 + 1, rounded up
    assert req.options["mem"] == f"{1024 + 512 + 2048}M"
    assert req.options["time"] == "02:00:00" and req.options["sbatch_args"] == ["--exclusive"]
    assert req.flavor == "small" and req.options["partition"] == "debug"


def test_without_limits_the_default_flavor_sizes_the_job() -> None:
    req = mapping.request(pod(), "debug", CFG, "01:00:00")
    assert (req.options["cpus"], req.options["mem"]) == (2, f"{4096 + 2048}M")


def test_init_containers_count_by_their_largest() -> None:
    p = pod([{"name": "a", "image": "x", **limits(cpu="1")}],
            initContainers=[{"name": "i", "image": "x", **limits(cpu="3", memory="2Gi")}])
    assert mapping.asks(p).cpus == 3 and mapping.asks(p).mem_bytes == 2 * 2**30


def test_a_pod_asking_for_gpus_gets_the_gpu_flavor() -> None:
    req = mapping.request(pod([{"name": "a", "image": "x", **limits(**{"nvidia.com/gpu": "2"})}]), "gpu", CFG, "1")
    assert req.flavor == "gpu" and req.options["gpus"] == "2" and req.options["sbatch_args"] == ["--constraint=a100"]
    assert req.options["cpus"] == 8  # the flavor's default: the pod named no CPU


def test_interlink_annotations_are_aliases() -> None:
    req = mapping.request(pod(annotations={"slurm-job.vk.io/flags": "--constraint=fast --nice=5",
                                           "slurm-job.vk.io/flavor": "gpu"}), "debug", CFG, "1")
    assert req.flavor == "gpu"
    assert req.options["sbatch_args"] == ["--constraint=a100", "--constraint=fast", "--nice=5"]


def test_kindslurm_annotations_set_slurm_options() -> None:
    req = mapping.request(pod(annotations={"kindslurm.io/time": "30", "kindslurm.io/account": "proj",
                                           "kindslurm.io/qos": "short", "kindslurm.io/node-image": "img:1",
                                           "kindslurm.io/load-images": "/images/a.tar, /images/b.tar"}),
                          "debug", CFG, "1")
    assert (req.options["time"], req.options["account"], req.options["qos"]) == ("30", "proj", "short")
    assert req.options["node_image"] == "img:1" and req.options["load_images"] == ["/images/a.tar", "/images/b.tar"]


@pytest.mark.parametrize("annotations,match", [
    ({"kindslurm.io/cpus": "3"}, "unknown annotation kindslurm.io/cpus"),
    ({"kindslurm.io/flavor": "huge"}, "unknown flavor 'huge'"),
    ({"kindslurm.io/time": "forever"}, "kindslurm.io/time"),
    ({"kindslurm.io/partition": "gpu"}, "select that partition's node"),
    ({"kindslurm.io/load-images": "/etc/shadow"}, "outside the directories"),
    ({"kindslurm.io/sbatch-flags": "'unclosed"}, "does not parse"),
    ({"kindslurm.io/sbatch-flags": "--time=5"}, "sbatch-flags: sbatch option '--time=5' bypasses .* kindslurm.io/"),
    ({"kindslurm.io/sbatch-flags": "--export=PYTHONPATH=/tmp/x"}, "'--export=PYTHONPATH=/tmp/x' is not one a pod may"),
    ({"slurm-job.vk.io/flags": "--get-user-env"}, "not one a pod may set"),
    ({"kindslurm.io/node-image": "evil:latest"}, "not one the bridge's admin allows"),
])
def test_bad_annotations_are_refused_with_the_fix(annotations: dict[str, str], match: str) -> None:
    with pytest.raises(PodRefused, match=match):
        mapping.request(pod(annotations=annotations), "debug", CFG, "1")


def test_a_pod_larger_than_any_node_of_the_partition_waits() -> None:
    with pytest.raises(PodNotReady, match="more than any node of partition debug") as e:
        mapping.request(pod([{"name": "a", "image": "x", **limits(cpu="64")}]), "debug", CFG, "1", (16, 64000, 0))
    assert e.value.reason == "TooLargeForPartition"


def test_active_deadline_stretches_the_time_limit() -> None:
    req = mapping.request(pod(activeDeadlineSeconds=3 * 3600), "debug", CFG, "01:00:00")
    assert req.options["time"] == "03:05:00"


def test_run_id_is_the_uid_and_nothing_else() -> None:
    from kindslurm import naming

    assert mapping.run_id_of("0f0e0d0c-aaaa-bbbb-cccc-111122223333") == "pod-0f0e0d0c-aaaa-bbbb-cccc-111122223333"
    assert naming.RUN_ID.match(mapping.run_id_of("0f0e0d0c-aaaa-bbbb-cccc-111122223333"))  # what spec.build takes
    with pytest.raises(PodRefused):
        mapping.run_id_of("../../etc")


def test_prefix_is_kind_valid() -> None:
    assert mapping.prefix_of("My.Pod_name-" + "x" * 60).startswith("kb-my-pod-name-")
    assert len(mapping.prefix_of("a" * 80)) <= 32


# -- the inner manifest ---------------------------------------------------------
def full_pod() -> dict[str, Any]:
    return pod([{"name": "main", "image": "busybox",
                 "env": [{"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
                         {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                         {"name": "NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "pw"}}}],
                 "envFrom": [{"configMapRef": {"name": "settings"}}],
                 "resources": {"limits": {"cpu": "1", "nvidia.com/gpu": "1"}},
                 "volumeMounts": [{"name": "kube-api-access-abcde", "mountPath": "/var/run/secrets/kubernetes.io"},
                                  {"name": "cfg", "mountPath": "/cfg"}]}],
               nodeName="kindslurm-debug", nodeSelector={"a": "b"}, tolerations=[{"operator": "Exists"}],
               schedulerName="default-scheduler", priority=0, serviceAccountName="trainer",
               volumes=[{"name": "kube-api-access-abcde", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}},
                                                                                   {"configMap": {"name": "kube-root-ca.crt"}}]}},
                        {"name": "cfg", "configMap": {"name": "settings"}},
                        {"name": "opt", "secret": {"secretName": "maybe", "optional": True}},
                        {"name": "tmp", "emptyDir": {}}])


def fetch_from(objects: dict[tuple[str, str], dict[str, Any]]) -> manifest.Fetch:
    def fetch(kind: str, ns: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(objects.get((kind, name)))
    return fetch


OBJECTS = {("ConfigMap", "settings"): {"metadata": {"name": "settings", "namespace": "default", "uid": "x",
                                                    "resourceVersion": "9"}, "data": {"MODE": "fast"}},
           ("Secret", "creds"): {"metadata": {"name": "creds", "namespace": "default"}, "type": "Opaque",
                                 "data": {"pw": "c2VjcmV0"}}}


def test_the_inner_pod_loses_scheduling_fields_and_the_outer_token() -> None:
    inner = manifest.inner_objects(full_pod(), "kindslurm-debug", CFG, fetch_from(OBJECTS))
    kinds = [d["kind"] for d in inner.docs]
    assert kinds == ["ServiceAccount", "ConfigMap", "Secret", "Pod"]
    spec = inner.docs[-1]["spec"]
    for key in ("nodeName", "nodeSelector", "tolerations", "schedulerName", "priority"):
        assert key not in spec
    assert [v["name"] for v in spec["volumes"]] == ["cfg", "opt", "tmp"]
    container = spec["containers"][0]
    assert [m["name"] for m in container["volumeMounts"]] == ["cfg"]
    assert container["resources"]["limits"] == {"cpu": "1"}  # kind has no device plugin
    env = {e["name"]: e for e in container["env"]}
    assert env["UID"] == {"name": "UID", "value": "0f0e0d0c-aaaa-bbbb-cccc-111122223333"}
    assert env["NODE"] == {"name": "NODE", "value": "kindslurm-debug"}
    assert "valueFrom" in env["NAME"]  # the same inside: left to the inner kubelet
    copied = {d["metadata"]["name"]: d for d in inner.docs if d["kind"] in ("ConfigMap", "Secret")}
    assert copied["settings"] == {"apiVersion": "v1", "kind": "ConfigMap",
                                  "metadata": {"name": "settings", "namespace": "default"}, "data": {"MODE": "fast"}}
    assert copied["creds"]["data"] == {"pw": "c2VjcmV0"}
    assert inner.mounts == []


def test_a_missing_configmap_keeps_the_pod_waiting() -> None:
    with pytest.raises(PodNotReady, match="ConfigMap default/settings") as e:
        manifest.inner_objects(full_pod(), "n", CFG, fetch_from({}))
    assert e.value.reason == "CreateContainerConfigError"


def test_other_namespaces_get_their_namespace() -> None:
    p = pod()
    p["metadata"]["namespace"] = "team"
    docs = manifest.inner_objects(p, "n", CFG, fetch_from({})).docs
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}}
    assert docs[-1]["metadata"]["namespace"] == "team"


def test_host_paths_only_under_the_admins_prefixes(tmp_path: Path) -> None:
    allowed = tmp_path / "scratch"
    cfg = bcfg.load({"host_path_prefixes": [str(allowed)]})
    ok = pod(volumes=[{"name": "data", "hostPath": {"path": f"{allowed}/me/../me/data"}}])
    inner = manifest.inner_objects(ok, "n", cfg, fetch_from({}))
    assert inner.mounts == [f"{allowed}/me/data:{allowed}/me/data"]
    for bad in ("/etc", f"{allowed}/../etc", f"{allowed}y"):
        with pytest.raises(PodRefused, match="outside the directories") as e:
            manifest.inner_objects(pod(volumes=[{"name": "d", "hostPath": {"path": bad}}]), "n", cfg, fetch_from({}))
        assert e.value.reason == "HostPathNotAllowed"


def test_a_pvc_needs_an_admins_rule_and_becomes_its_directory(tmp_path: Path) -> None:
    p = pod(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "results"}}])
    with pytest.raises(PodRefused, match="no bridge.pvc_rules entry") as e:
        manifest.inner_objects(p, "n", CFG, fetch_from({}))
    assert e.value.reason == "PVCNotMapped"
    cfg = bcfg.load({"pvc_rules": [{"namespace": "other", "path": "/nope/{claim}"},
                                   {"claim": "res*", "path": str(tmp_path / "pvc" / "{namespace}" / "{claim}")}]})
    inner = manifest.inner_objects(p, "n", cfg, fetch_from({}))
    target = tmp_path / "pvc" / "default" / "results"
    assert target.is_dir() and inner.mounts == [f"{target}:{target}"]
    assert inner.docs[-1]["spec"]["volumes"] == [{"name": "data", "hostPath": {"path": str(target), "type": "Directory"}}]


def test_unsupported_volumes_are_refused() -> None:
    with pytest.raises(PodRefused, match="type nfs"):
        manifest.inner_objects(pod(volumes=[{"name": "n", "nfs": {"server": "x", "path": "/"}}]), "n", CFG,
                               fetch_from({}))


@pytest.mark.parametrize("raw,match", [
    ({"flavors": {"a": {"cpus": "two"}}}, "bridge.flavors"),
    ({"default_flavor": "nope"}, "default_flavor"),
    ({"flavors": {"a": {"mem": "lots"}}}, "bridge.flavors.a"),
    ({"flavors": {"a": {"sbatch_args": ["--time=5"]}}}, "--time"),
    ({"host_path_prefixes": ["relative"]}, "absolute"),
    ({"pvc_rules": [{"path": "/x/{user}"}]}, "only {namespace} and {claim}"),
    ({"unknown": 1}, "bridge"),
])
def test_bad_bridge_config_is_one_line(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match) as e:
        bcfg.load(raw)
    assert "\n" not in str(e.value)
