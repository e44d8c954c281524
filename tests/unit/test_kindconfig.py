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
