"""LocalTransport for real: commands through kindslurm.proc, files on disk,
following a growing file from an offset."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from kindslurm.errors import CommandError, CommandTimeout, KindslurmError
from kindslurm.transport.base import Transport
from kindslurm.transport.local import LocalTransport


@pytest.fixture
def t() -> LocalTransport:
    return LocalTransport()


def test_it_is_a_transport(t: LocalTransport) -> None:
    assert isinstance(t, Transport)


def test_run_returns_the_result_and_takes_input(t: LocalTransport) -> None:
    assert t.run(["true"]).ok
    res = t.run(["sh", "-c", "cat; echo err >&2; exit 3"], input="in\n", check=False)
    assert (res.returncode, res.stdout, res.stderr) == (3, "in\n", "err\n")


def test_run_maps_failures_as_proc_does(t: LocalTransport) -> None:
    with pytest.raises(CommandError):
        t.run(["sh", "-c", "exit 2"])
    with pytest.raises(CommandTimeout):
        t.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(KindslurmError, match="not found on PATH"):
        t.run(["/nonexistent/kindslurm-tool"])


def test_files_read_write_list(t: LocalTransport, tmp_path: Path) -> None:
    path = str(tmp_path / "a.txt")
    t.write_text(path, "hello\n", mode=0o600)
    assert t.read_text(path) == "hello\n" and (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o600
    assert t.read_from(path, 2) == b"llo\n" and t.read_from(str(tmp_path / "none"), 0) is None
    (tmp_path / "b.log").write_text("")
    assert t.list_dir(str(tmp_path)) == [path, str(tmp_path / "b.log")]
    assert t.list_dir(str(tmp_path), "*.log") == [str(tmp_path / "b.log")]
    assert t.list_dir(str(tmp_path / "none")) == []
    assert t.exists(path) and not t.exists(str(tmp_path / "none"))
    with pytest.raises(FileNotFoundError):
        t.read_text(str(tmp_path / "none"))


def test_follow_yields_whole_lines_then_the_rest(t: LocalTransport, tmp_path: Path) -> None:
    path = tmp_path / "out"
    path.write_text("skip\nfirst\n")
    finished = threading.Event()

    def writer() -> None:
        with open(path, "a") as f:
            f.write("sec")
            f.flush()
            f.write("ond\nlast, unterminated")
        finished.set()

    threading.Timer(0.1, writer).start()
    got = list(t.follow(str(path), offset=len("skip\n"), done=finished.is_set, interval=0.02))
    assert "".join(got) == "first\nsecond\nlast, unterminated\n"
    assert all(chunk.endswith("\n") for chunk in got)


def test_follow_of_a_file_that_never_appears_ends_quietly(t: LocalTransport, tmp_path: Path) -> None:
    assert list(t.follow(str(tmp_path / "none"), done=lambda: True)) == []


def test_forward_port_is_the_same_address_locally(t: LocalTransport) -> None:
    assert t.forward_port("127.0.0.1", 6443) == ("127.0.0.1", 6443)
