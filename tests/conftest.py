"""Shared fixtures: every test gets its own XDG directories, so records,
kubeconfigs and job directories never mix with the user's or each other's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SYSCTLS = ("kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory")


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_STATE_HOME", "state"), ("XDG_DATA_HOME", "data")):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.delenv("KINDSLURM_CONFIG", raising=False)
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_STEP_ID", raising=False)
    rundir = tmp_path / "rundir"  # markers and locks of in-process tests stay out of the real /run/kindslurm
    rundir.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(rundir))
    from kindslurm import paths

    monkeypatch.setattr(paths, "ROOT_RUNTIME_DIR", rundir / "kindslurm")
    return tmp_path


@pytest.fixture
def no_site_config(xdg: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(xdg / "no-site-config.yaml"))
    return xdg


@pytest.fixture(scope="session", autouse=True)
def restore_host_sysctls():
    """A privileged kind node's kubelet rewrites a few host sysctls: put them back."""
    saved = {}
    if os.geteuid() == 0:
        for key in SYSCTLS:
            try:
                saved[key] = Path("/proc/sys", key).read_text()
            except OSError:
                pass
    yield saved
    for key, value in saved.items():
        try:
            Path("/proc/sys", key).write_text(value)
        except OSError:
            pass
