from kindslurm.cluster import kindconfig
from kindslurm.spec import JobSpec


def spec(**kw):
    base = dict(run_id="r", mode="sbatch", prefix="ks-u", user="u", submit_dir="/work/proj", job_dir="/j")
    base.update(kw)
    return JobSpec(**base)


def test_defaults_bind_loopback_with_an_atomic_port_and_mount_app():
    cfg = kindconfig.build(spec(workers=2))
    assert cfg["networking"] == {"apiServerAddress": "127.0.0.1", "apiServerPort": -1}
    assert [n["role"] for n in cfg["nodes"]] == ["control-plane", "worker", "worker"]
    for node in cfg["nodes"]:
        assert {"hostPath": "/work/proj", "containerPath": "/app"} in node["extraMounts"]


def test_extra_mounts_and_devices():
    cfg = kindconfig.build(spec(extra_mounts=["/data:/data:ro"]), devices=["/dev/nvidia0"])
    mounts = cfg["nodes"][0]["extraMounts"]
    assert {"hostPath": "/data", "containerPath": "/data", "readOnly": True} in mounts
    assert {"hostPath": "/dev/nvidia0", "containerPath": "/dev/nvidia0"} in mounts


def test_user_config_overrides_but_keeps_app_mount():
    user = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
            "networking": {"podSubnet": "10.250.0.0/16"},
            "nodes": [{"role": "control-plane", "extraMounts": [{"hostPath": "/x", "containerPath": "/app"}]}],
            "featureGates": {"Foo": True}}
    cfg = kindconfig.build(spec(), user)
    assert cfg["networking"]["podSubnet"] == "10.250.0.0/16" and cfg["networking"]["apiServerPort"] == -1
    assert cfg["featureGates"] == {"Foo": True}
    assert cfg["nodes"][0]["extraMounts"] == [{"hostPath": "/x", "containerPath": "/app"}]


def test_gpu_devices_only_existing(tmp_path, monkeypatch):
    assert kindconfig.gpu_devices(None) == []
    assert kindconfig.gpu_devices("0,1") == []  # no /dev/nvidia* on this machine


def test_k8s_port_is_mapped_one_to_one_on_the_control_plane_after_the_users_mappings():
    user = {"kind": "Cluster", "nodes": [{"role": "control-plane",
                                          "extraPortMappings": [{"containerPort": 80, "hostPort": 8080}]},
                                         {"role": "worker"}]}
    cfg = kindconfig.build(spec(k8s_port_address="127.0.0.1"), user, k8s_port=31234)
    assert cfg["nodes"][0]["extraPortMappings"] == [
        {"containerPort": 80, "hostPort": 8080},
        {"containerPort": 31234, "hostPort": 31234, "listenAddress": "127.0.0.1", "protocol": "TCP"}]
    assert "extraPortMappings" not in cfg["nodes"][1]
    assert "extraPortMappings" not in kindconfig.build(spec())["nodes"][0]  # no port, no mapping


def test_registry_mirrors_are_mounted_read_only_in_every_node_and_patch_containerd_keeping_the_users_patches():
    user = {"kind": "Cluster", "containerdConfigPatches": ["[plugins.x]\n  y = 1\n"]}
    cfg = kindconfig.build(spec(workers=1), user, certs_d="/j/registry/certs.d")
    for node in cfg["nodes"]:
        assert {"hostPath": "/j/registry/certs.d", "containerPath": "/etc/containerd/certs.d",
                "readOnly": True} in node["extraMounts"]
    patches = cfg["containerdConfigPatches"]
    assert patches[0] == "[plugins.x]\n  y = 1\n"
    assert 'config_path = "/etc/containerd/certs.d"' in patches[1] and len(patches) == 2
    assert "containerdConfigPatches" not in kindconfig.build(spec())
