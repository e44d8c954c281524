#!/usr/bin/env python3
"""Make a single-layer docker-archive image from a root filesystem directory.

No registry, no daemon: the archive is what `ctr images import` (and
`podman load`) read.  Used by build.sh for every image preloaded into the
kind node's containerd.

  mkimage.py --rootfs DIR --out IMG.tar --tag registry.k8s.io/pause:3.10.1 \
      [--tag ...] [--entrypoint '["/pause"]'] [--cmd '[]'] [--env K=V ...] \
      [--label K=V ...] [--workdir /]
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rootfs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", action="append", required=True)
    ap.add_argument("--entrypoint", default=None, help="JSON list")
    ap.add_argument("--cmd", default=None, help="JSON list")
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("--workdir", default="/")
    ap.add_argument("--created", default="1970-01-01T00:00:00Z")
    a = ap.parse_args()

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    for e in a.env:
        k = e.split("=", 1)[0]
        env = [x for x in env if x.split("=", 1)[0] != k] + [e]

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(a.out))) as tmp:
        layer = os.path.join(tmp, "layer.tar")
        subprocess.run(
            ["tar", "-C", a.rootfs, "--numeric-owner", "--sort=name",
             "--mtime=@0", "-cf", layer, "."],
            check=True,
        )
        diff_id = sha256_file(layer)
        cfg = {
            "architecture": "amd64",
            "os": "linux",
            "created": a.created,
            "config": {
                "Env": env,
                "WorkingDir": a.workdir,
                "Labels": dict(l.split("=", 1) for l in a.label) or None,
            },
            "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
            "history": [{"created": a.created, "created_by": "kindslurm mkimage.py"}],
        }
        if a.entrypoint is not None:
            cfg["config"]["Entrypoint"] = json.loads(a.entrypoint)
        if a.cmd is not None:
            cfg["config"]["Cmd"] = json.loads(a.cmd)
        if cfg["config"]["Labels"] is None:
            del cfg["config"]["Labels"]
        cfg_bytes = json.dumps(cfg, sort_keys=True).encode()
        cfg_name = hashlib.sha256(cfg_bytes).hexdigest() + ".json"
        manifest = [{
            "Config": cfg_name,
            "RepoTags": a.tag,
            "Layers": [diff_id + "/layer.tar"],
        }]

        def add_bytes(tf, name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))

        tmp_out = a.out + ".tmp"
        with tarfile.open(tmp_out, "w", format=tarfile.PAX_FORMAT) as tf:
            add_bytes(tf, cfg_name, cfg_bytes)
            tf.add(layer, arcname=diff_id + "/layer.tar")
            add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
        os.replace(tmp_out, a.out)
    print(f"{a.out}: {', '.join(a.tag)}", file=sys.stderr)


if __name__ == "__main__":
    main()
