"""The directories kindslurm trusts: runtime dir choice, planted symlinks and
foreign owners, the saved host sysctls, and the template bytecode cache."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path

import pytest

from kindslurm.node import hostsysctl
from kindslurm import paths
from kindslurm.scheduler import render
from kindslurm.errors import PreflightError


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory to another uid needs root")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def as_user(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pretend to be uid 1000 (the tests themselves may run as root)."""
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    return 1000


# -- runtime_dir -------------------------------------------------------------

def test_root_uses_run_kindslurm_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert paths.ROOT_RUNTIME_DIR == Path("/run/kindslurm")
    assert paths.runtime_dir() == Path("/run/kindslurm")
    assert not str(paths.markers_dir()).startswith(tempfile.gettempdir())


def test_root_ignores_xdg_runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(paths, "ROOT_RUNTIME_DIR", tmp_path / "run-kindslurm")
    xdg = tmp_path / "user0"
    xdg.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert paths.runtime_dir() == tmp_path / "run-kindslurm"


@needs_root
def test_user_with_a_private_xdg_runtime_dir_uses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_user: int) -> None:
    xdg = tmp_path / "1000"
    xdg.mkdir(mode=0o700)
    os.lchown(xdg, as_user, as_user)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(xdg))
    assert paths.runtime_dir() == xdg / "kindslurm"


@needs_root
@pytest.mark.parametrize("problem", ["missing", "foreign", "symlink", "world-writable", "relative", "empty"])
def test_user_without_a_usable_xdg_runtime_dir_gets_a_private_per_host_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, as_user: int, problem: str) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    xdg = tmp_path / "xdg"
    if problem == "foreign":
        xdg.mkdir(mode=0o700)  # owned by the real uid, not 1000
    elif problem == "symlink":
        real = tmp_path / "real"
        real.mkdir(mode=0o700)
        os.lchown(real, as_user, as_user)
        xdg.symlink_to(real)
    elif problem == "world-writable":
        xdg.mkdir()
        os.chmod(xdg, 0o777)
        os.lchown(xdg, as_user, as_user)
    value = {"relative": "run/user/1000", "empty": ""}.get(problem, str(xdg))
    monkeypatch.setenv("XDG_RUNTIME_DIR", value)
    got = paths.runtime_dir()
    assert got == tmp_path / "state" / "kindslurm" / "run" / os.uname().nodename
    assert got != Path(tempfile.gettempdir()) / f"kindslurm-{as_user}"
    assert got.parent.parent == paths.state_dir()


# -- ensure_private_dir --------------------------------------------------------

def test_a_symlink_in_place_of_the_dir_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.mkdir()
    os.chmod(target, 0o755)
    link = tmp_path / "kindslurm-0"
    link.symlink_to(target)
    with pytest.raises(PreflightError, match="is a symlink") as e:
        paths.ensure_private_dir(link)
    assert str(link) in str(e.value) and "\n" not in str(e.value)
    assert mode(target) == 0o755


def test_a_dangling_symlink_is_refused_not_followed(tmp_path: Path) -> None:
    link = tmp_path / "rt"
    link.symlink_to(tmp_path / "would-be-created")
    with pytest.raises(PreflightError, match="symlink"):
        paths.ensure_private_dir(link / "creating")
    assert not (tmp_path / "would-be-created").exists()


@needs_root
def test_a_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    planted = tmp_path / "rt"
    planted.mkdir(mode=0o777)
    os.chmod(planted, 0o777)
    os.chown(planted, 12345, 12345)
    with pytest.raises(PreflightError, match="belongs to uid 12345"):
        paths.ensure_private_dir(planted)
    assert mode(planted) == 0o777


def test_missing_parts_are_made_private_and_an_open_mode_is_fixed(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    assert paths.ensure_private_dir(deep) == deep
    assert [mode(p) for p in (tmp_path / "a", tmp_path / "a" / "b", deep)] == [0o700] * 3
    os.chmod(deep, 0o755)
    paths.ensure_private_dir(deep)
    assert mode(deep) == 0o700


def test_existing_symlinked_parents_are_trusted(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    (tmp_path / "home").symlink_to(tmp_path / "scratch")
    made = paths.ensure_private_dir(tmp_path / "home" / "state" / "kindslurm")
    assert (tmp_path / "scratch" / "state" / "kindslurm").is_dir() and made.is_dir()


def test_write_private_replaces_a_planted_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("keep\n")
    d = paths.ensure_private_dir(tmp_path / "rt")
    (d / "host-sysctls.json").symlink_to(victim)
    paths.write_private(d / "host-sysctls.json", "{}")
    assert victim.read_text() == "keep\n"
    assert not (d / "host-sysctls.json").is_symlink() and mode(d / "host-sysctls.json") == 0o600


# -- hostsysctl ------------------------------------------------------------------

@pytest.fixture
def fake_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Root with its runtime dir and /proc/sys under tmp_path."""
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "getuid", lambda: 0)
    monkeypatch.setattr(paths, "ROOT_RUNTIME_DIR", tmp_path / "run" / "kindslurm")
    monkeypatch.setattr(hostsysctl, "PROC_SYS", tmp_path / "proc" / "sys")
    for key, value in (("kernel/panic", "0"), ("kernel/panic_on_oops", "0"), ("vm/overcommit_memory", "0")):
        (tmp_path / "proc" / "sys" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "proc" / "sys" / key).write_text(value + "\n")
    return tmp_path


@needs_root
def test_restore_writes_nothing_from_a_planted_file(fake_root: Path) -> None:
    saved = paths.ensure_private_dir(paths.runtime_dir()) / "host-sysctls.json"
    saved.write_text(json.dumps({"../../tmp/x": "1", "kernel/panic": "$(id)", "vm/overcommit_memory": "1\n2",
                                 "kernel/panic_on_oops": ["1"]}))
    assert hostsysctl.restore() == {}
    assert not (fake_root / "tmp" / "x").exists() and not (fake_root / "proc" / "tmp").exists()
    for key in hostsysctl.KEYS:
        assert (fake_root / "proc" / "sys" / key).read_text() == "0\n"
    assert not saved.exists()


@needs_root
def test_restore_puts_back_the_recorded_integers(fake_root: Path) -> None:
    hostsysctl.record()
    (fake_root / "proc" / "sys" / "kernel" / "panic").write_text("10\n")
    (fake_root / "proc" / "sys" / "vm" / "overcommit_memory").write_text("1\n")
    assert hostsysctl.restore() == {"kernel/panic": "0", "vm/overcommit_memory": "0"}
    assert (fake_root / "proc" / "sys" / "kernel" / "panic").read_text() == "0"


@needs_root
def test_restore_does_not_read_through_a_symlink(fake_root: Path) -> None:
    elsewhere = fake_root / "elsewhere.json"
    elsewhere.write_text(json.dumps({"kernel/panic": "7"}))
    saved = paths.ensure_private_dir(paths.runtime_dir()) / "host-sysctls.json"
    saved.symlink_to(elsewhere)
    assert hostsysctl.restore() == {}
    assert (fake_root / "proc" / "sys" / "kernel" / "panic").read_text() == "0\n"


def test_restore_refuses_a_planted_runtime_dir(fake_root: Path) -> None:
    (fake_root / "run").mkdir()
    victim = fake_root / "victim"
    victim.mkdir()
    (victim / "host-sysctls.json").write_text(json.dumps({"kernel/panic": "7"}))
    paths.ROOT_RUNTIME_DIR.symlink_to(victim)
    with pytest.raises(PreflightError, match="symlink"):
        hostsysctl.restore()
    assert (fake_root / "proc" / "sys" / "kernel" / "panic").read_text() == "0\n"


# -- the jinja2 bytecode cache ------------------------------------------------------

def test_cache_is_used_in_a_private_dir_and_tightens_an_old_0755_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "cache" / "kindslurm").mkdir(parents=True)
    os.chmod(tmp_path / "cache" / "kindslurm", 0o755)
    cache = render._bytecode_cache()
    assert cache is not None and Path(cache.directory) == (tmp_path / "cache" / "kindslurm" / "jinja").resolve()
    assert mode(tmp_path / "cache" / "kindslurm") == 0o700 and mode(Path(cache.directory)) == 0o700


@pytest.mark.parametrize("problem", ["symlink", "group-writable", pytest.param("foreign", marks=needs_root), "shared-parent"])
def test_cache_in_a_dir_others_could_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, problem: str) -> None:
    base = tmp_path / "cache"
    base.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(base))
    if problem == "symlink":
        (tmp_path / "theirs").mkdir(mode=0o700)
        (base / "kindslurm").symlink_to(tmp_path / "theirs")
    elif problem == "group-writable":
        (base / "kindslurm" / "jinja").mkdir(parents=True)
        os.chmod(base / "kindslurm" / "jinja", 0o770)
    elif problem == "foreign":
        (base / "kindslurm").mkdir(mode=0o700)
        os.chown(base / "kindslurm", 12345, 12345)
    else:
        os.chmod(base, 0o777)  # anyone could rename kindslurm/ away and plant their own
    assert render._bytecode_cache() is None
    if problem == "symlink":
        assert list((tmp_path / "theirs").iterdir()) == []
