"""How a node decides where its node image comes from, with the real podman:
present, loaded from the archive, pulled by kind, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from kindslurm.node import preflight
from kindslurm.errors import PreflightError
from kindslurm.cluster.kind_podman import KindPodman

from .conftest import Env

PRESENT = "localhost/kindslurm/busybox:1"
ABSENT = "localhost/kindslurm/no-such-image:0"


def test_image_states(tmp_path: Path):
    archive = tmp_path / "node.tar"
    archive.write_bytes(b"")
    assert KindPodman().image_state(PRESENT, None) == "present"
    assert KindPodman().image_state(ABSENT, None) == "pull"
    assert KindPodman().image_state(ABSENT, str(archive)) == "archive"
    assert KindPodman().image_state(ABSENT, str(tmp_path / "gone.tar")) == "no-archive"
    checks = {s: preflight.image_check(s, ABSENT, str(tmp_path / "gone.tar")) for s in ("pull", "no-archive")}
    assert checks["pull"].status == preflight.WARN and "kind will pull it" in checks["pull"].line
    assert checks["no-archive"].status == preflight.ERROR and "fix node_image_archive" in checks["no-archive"].line


def test_ensure_image_loads_from_archive_or_says_why_not(tmp_path: Path):
    provider = KindPodman()
    assert provider.ensure_image(PRESENT, None) == "present"
    assert provider.ensure_image(ABSENT, None) == "pull"
    with pytest.raises(PreflightError, match="does not exist"):
        provider.ensure_image(ABSENT, str(tmp_path / "gone.tar"))
    bogus = tmp_path / "bogus.tar"
    bogus.write_bytes(b"not an image archive")
    with pytest.raises(PreflightError, match="podman cannot load"):
        provider.ensure_image(ABSENT, str(bogus))


def test_missing_archive_stops_the_run_before_anything_is_created(env: Env, tmp_path: Path):
    script = tmp_path / "w.sh"
    script.write_text("#!/bin/bash\necho should-not-run\n")
    res = env.ks("run", "--local", str(script), "--node-image", ABSENT, "--node-image-archive", str(tmp_path / "gone.tar"))
    assert res.returncode == 70, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "its archive" in out and "does not exist" in out, out
    assert "should-not-run" not in res.stdout
    rec = env.records()[-1]
    assert rec["phase"] == "failed" and rec["exit_code"] == 70
    assert env.kubeconfigs() == []
