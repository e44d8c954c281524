"""kindslurm.api: how a run starts (sbatch, srun, inline, local), bad input
refused before anything is submitted, and the lazy top-level names. A fake
Scheduler stands in for Slurm: the API sees only the Protocol."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import pytest

import kindslurm
from kindslurm import api, exitcodes, records
from kindslurm.errors import SchedulerError, SpecError
from kindslurm.phases import Phase
from kindslurm.scheduler.base import JobState, Resources, Scheduler


class FakeScheduler:
    def __init__(self, partitions: Sequence[str] = ("debug",), fail: bool = False, end: str = "COMPLETED") -> None:
        self.known = list(partitions)
        self.fail = fail
        self.end = end
        self.submitted: list[str] = []
        self.cancelled: list[tuple[str, str | None]] = []

    def submit(self, script: str, extra: Sequence[str] = ()) -> str:
        if self.fail:
            raise SchedulerError("sbatch refused the job: no")
        self.submitted.append(script)
        return "4711"

    def srun_argv(self, resources: Resources, command: Sequence[str]) -> list[str]:
        return ["/nonexistent/srun", f"--job-name={resources.job_name}", "--", *command]

    def overlap_argv(self, job_id: str, command: Sequence[str]) -> list[str]:
        return ["/nonexistent/srun", f"--jobid={job_id}", "--overlap", "--", *command]

    def states(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        return {j: JobState(j, self.end, "", 0) for j in job_ids}

    def state(self, job_id: str) -> JobState | None:
        return self.states([job_id])[job_id]

    def cancel(self, job_id: str, step_id: str | None = None) -> None:
        self.cancelled.append((job_id, step_id))

    def partitions(self) -> list[str]:
        return self.known

    def check_partition(self, partition: str | None) -> None:
        if partition and partition not in self.known:
            raise SpecError(f"unknown partition {partition!r}")

    def find_by_comment(self, user: str, comment: str) -> str | None:
        return None


@pytest.fixture
def script(no_site_config: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    for var in ("SLURM_JOB_NODELIST", "SLURM_NODELIST", "SLURM_JOBID"):
        monkeypatch.delenv(var, raising=False)
    path = no_site_config / "w.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    return str(path)


def test_the_fake_is_a_scheduler() -> None:
    assert isinstance(FakeScheduler(), Scheduler)


def test_outside_an_allocation_a_run_is_submitted(script: str) -> None:
    assert api.plan(script, scheduler=FakeScheduler()).mode == "sbatch"
    assert api.plan(script, local=True, scheduler=FakeScheduler()).mode == "local"
    assert api.plan(script, srun=True, scheduler=FakeScheduler()).mode == "srun"


def test_inside_an_allocation_it_runs_there_unless_submit_is_forced(script: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_JOB_NODELIST", socket.gethostname())
    p = api.plan(script, scheduler=FakeScheduler())
    assert p.mode == "inline" and p.spec.in_allocation
    assert api.plan(script, submit=True, scheduler=FakeScheduler()).mode == "sbatch"
    monkeypatch.setenv("SLURM_JOB_NODELIST", "some-other-node")
    assert api.plan(script, scheduler=FakeScheduler()).mode == "srun"


@pytest.mark.parametrize("kwargs, message", [
    ({"srun": True, "local": True}, "exclude each other"),
    ({"partition": "nope"}, "unknown partition"),
    ({"cpus": 0}, "at least 1 CPU"),
    ({"sbatch_args": ["--array=1-3"]}, "job array"),
    ({"colour": "red"}, "unknown run option 'colour'"),
    ({"manifests": ["/nonexistent/job.yaml"]}, "does not exist"),
])
def test_bad_input_is_refused_before_anything_is_submitted(script: str, kwargs: dict[str, object], message: str) -> None:
    fake = FakeScheduler()
    with pytest.raises(SpecError, match=message):
        api.submit_plan(api.plan(script, scheduler=fake, **kwargs))  # type: ignore[arg-type]
    assert fake.submitted == [] and records.all_records() == []


def test_submit_writes_the_job_directory_and_records_the_job(script: str) -> None:
    fake = FakeScheduler()
    p = api.plan(script, name="demo", scheduler=fake, cpus=2)
    done = api.submit_plan(p)
    assert done == api.Submitted("4711", p.spec.run_id, "demo-4711", p.spec.job_dir)
    assert fake.submitted == [str(Path(p.spec.job_dir, "batch.sh"))]
    assert "#SBATCH --cpus-per-task=2\n" in Path(fake.submitted[0]).read_text()
    rec = records.load(done.run_id)
    assert rec is not None and rec.job_id == "4711" and rec.phase == Phase.SUBMITTED


def test_a_refused_submission_leaves_nothing_behind(script: str) -> None:
    p = api.plan(script, scheduler=FakeScheduler(fail=True))
    with pytest.raises(SchedulerError):
        api.submit_plan(p)
    assert not Path(p.spec.job_dir).exists() and records.load(p.spec.run_id) is None


def test_a_missing_srun_undoes_the_job_directory(script: str) -> None:
    p = api.plan(script, srun=True, scheduler=FakeScheduler())
    with pytest.raises(api.KindslurmError, match="srun not found on PATH: install Slurm's client commands"):
        api.foreground_plan(p)
    assert not Path(p.spec.job_dir).exists() and records.load(p.spec.run_id) is None


def test_dry_run_shows_the_script_or_the_srun_line_and_writes_nothing(script: str) -> None:
    p = api.plan(script, submit=True, scheduler=FakeScheduler(), partition="debug")
    assert "#SBATCH --partition=debug\n" in api.dry_run(p)
    line = api.dry_run(api.plan(script, srun=True, scheduler=FakeScheduler()))
    assert line.startswith("/nonexistent/srun --job-name=kindslurm-") and line.endswith("spec.json\n")
    assert not Path(p.spec.job_dir).exists()


def test_wait_cancel_and_status_of_a_submitted_run(script: str) -> None:
    fake = FakeScheduler(end="CANCELLED")
    done = api.submit_plan(api.plan(script, scheduler=fake))
    assert api.wait(done, scheduler=fake, stream=False) == exitcodes.CANCELLED
    view = api.status(done.job_id, scheduler=fake)
    assert view.record.run_id == done.run_id and view.job_state is not None and view.job_state.state == "cancelled"
    assert api.cancel(done, scheduler=fake).action == "job" and fake.cancelled == [("4711", None)]
    assert [v.record.run_id for v in api.list_runs(scheduler=fake)] == [done.run_id]


@pytest.mark.parametrize("state, slurm_code, expected", [
    (None, None, exitcodes.SCHEDULER), ("completed", 0, exitcodes.OK), ("cancelled", 0, exitcodes.CANCELLED),
    ("timeout", 0, exitcodes.TIME_LIMIT), ("failed", 3, 3), ("failed", 0, exitcodes.SCHEDULER),
])
def test_the_exit_code_of_a_job_that_ended_without_writing_one(state: str | None, slurm_code: int | None,
                                                              expected: int) -> None:
    assert exitcodes.of_scheduler_end(state, slurm_code) == expected


def test_every_public_name_resolves() -> None:
    for name in kindslurm.__all__:
        assert getattr(kindslurm, name) is not None
    assert kindslurm.submit is api.submit and set(kindslurm.__all__) <= set(dir(kindslurm))
    with pytest.raises(AttributeError):
        kindslurm.nope  # type: ignore[attr-defined]  # noqa: B018


def test_importing_the_package_imports_no_layer() -> None:
    code = "import sys, kindslurm; print(sorted(m for m in sys.modules if m.startswith('kindslurm')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['kindslurm']"
