"""Slurm.states: only a working squeue may call a job gone; sacct's partial
answers never stand in for it; array and het-job ids never crash a lookup.
Run over each transport: the fake tools stand in for kindslurm.proc.run, which
LocalTransport calls."""

from __future__ import annotations

from typing import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kindslurm import proc
from kindslurm.scheduler import slurm
from kindslurm.errors import CommandTimeout, KindslurmError
from kindslurm.scheduler.slurm import Slurm, StatesUnknown
from tests.unit.transports import transport  # noqa: F401  (the fixture)

Answer = tuple[int, str, str]


def fake_tools(monkeypatch: pytest.MonkeyPatch, squeue: Answer | Callable[[], Answer], sacct: Answer) -> list[list[str]]:
    calls: list[list[str]] = []

    def run(argv, check=True, timeout=None, **kw):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        answer = {"squeue": squeue, "sacct": sacct}[argv[0]]
        code, out, err = answer() if callable(answer) else answer
        return proc.Result(list(argv), code, out, err)

    monkeypatch.setattr(slurm.proc, "run", run)
    return calls


def test_squeue_down_with_a_partial_sacct_answer_is_unknown_not_gone(monkeypatch, transport):
    fake_tools(monkeypatch, (1, "", "slurm_load_jobs error: Unable to contact slurm controller"), (0, "1|COMPLETED|0:0|1\n", ""))
    with pytest.raises(StatesUnknown) as e:
        Slurm(transport).states(["1", "2"])
    assert set(e.value.partial) == {"1"}
    assert "Unable to contact" in str(e.value)


def test_an_id_a_working_squeue_does_not_know_and_sacct_lacks_is_gone(monkeypatch, transport):
    calls = fake_tools(monkeypatch, (0, "1|RUNNING|None|1\n", ""), (1, "", "accounting storage is disabled"))
    got = Slurm(transport).states(["1", "2"])
    assert set(got) == {"1"} and got["1"].active
    assert calls[1][0] == "sacct" and "2" in calls[1]


def test_squeue_invalid_job_id_is_an_answer(monkeypatch, transport):
    fake_tools(monkeypatch, (1, "", "slurm_load_jobs error: Invalid job id specified"), (1, "", "no accounting"))
    assert Slurm(transport).states(["5"]) == {}


def test_sacct_fills_in_what_squeue_forgot(monkeypatch, transport):
    fake_tools(monkeypatch, (0, "", ""), (0, "6|FAILED|3:0|6\n6.batch|FAILED|3:0|6.batch\n", ""))
    got = Slurm(transport).states(["6"])
    assert got["6"].state == "failed" and got["6"].exit_code == 3


def test_a_missing_or_hung_squeue_is_unknown_not_a_crash(monkeypatch, transport):
    def missing() -> Answer:
        raise KindslurmError("squeue not found on PATH")

    fake_tools(monkeypatch, missing, (1, "", ""))
    with pytest.raises(StatesUnknown):
        Slurm(transport).states(["7"])

    def hung() -> Answer:
        raise CommandTimeout(["squeue"], 30)  # what proc.run raises for a hung tool

    fake_tools(monkeypatch, hung, (1, "", ""))
    with pytest.raises(StatesUnknown):
        Slurm(transport).states(["7"])


def test_one_job_state_takes_sacct_word_only_for_that_job(monkeypatch, transport):
    down = (1, "", "Socket timed out")
    fake_tools(monkeypatch, down, (0, "8|COMPLETED|0:0|8\n", ""))
    assert Slurm(transport).state("8").state == "completed"  # type: ignore[union-attr]
    fake_tools(monkeypatch, down, (0, "", ""))
    with pytest.raises(StatesUnknown):
        Slurm(transport).state("8")


def test_array_tasks_are_found_by_base_and_raw_id(monkeypatch, transport):
    out = "123_4|RUNNING|None|127\n123_[5-9%2]|PENDING|JobArrayTaskLimit|123\n"
    fake_tools(monkeypatch, (0, out, ""), (1, "", ""))
    got = Slurm(transport).states(["123", "127"])
    assert got["123"].active and got["127"].slurm_state == "RUNNING"


def test_one_running_array_task_keeps_the_base_active():
    got = slurm.parse_sacct("200_1|COMPLETED|0:0|201\n200_2|RUNNING|0:0|202\n200_3|FAILED|1:0|203\n")
    assert got["200"].active
    assert got["203"].exit_code == 1 and not got["201"].active
    het = slurm.parse_squeue("300+0|RUNNING|None|300\n300+1|RUNNING|None|301\n")
    assert het["300"].active and "301" in het


def test_old_three_column_output_still_parses():
    assert slurm.parse_squeue("9|PENDING|Priority\n")["9"].explanation == "waiting behind higher-priority jobs"
    assert slurm.parse_sacct("9|COMPLETED|0:0\n")["9"].exit_code == 0


@given(st.text(alphabet="0123456789_+[]-%|.,: \nABCDEFGHIJKLMNOPQRSTUVWXYZabc", max_size=200))
def test_no_output_crashes_the_parsers(text):
    for parse in (slurm.parse_squeue, slurm.parse_sacct):
        for key, js in parse(text).items():
            assert key and js.job_id == key
            assert js.state in (*slurm.STATES.values(), "unknown")
