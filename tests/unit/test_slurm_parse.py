import pytest

from kindslurm.scheduler import slurm
from kindslurm.errors import SchedulerError
from kindslurm.scheduler.base import Resources
from tests.unit.transports import transport  # noqa: F401  (the fixture)


def test_parsable_with_cluster_suffix():
    assert slurm.parse_parsable("123;cluster\n") == "123"
    assert slurm.parse_parsable("45\n") == "45"
    with pytest.raises(SchedulerError):
        slurm.parse_parsable("sbatch: error: oops")


def test_squeue_states_and_pending_reason():
    states = slurm.parse_squeue("7|PENDING|Resources\n8|RUNNING|None\n")
    assert states["7"].state == "pending" and states["7"].explanation == "waiting for free resources"
    assert states["8"].state == "running" and states["8"].active


def test_sacct_skips_steps_and_reads_exit_codes():
    states = slurm.parse_sacct("9|COMPLETED|0:0\n9.batch|COMPLETED|0:0\n10|CANCELLED by 0|0:15\n11|FAILED|3:0\n")
    assert set(states) == {"9", "10", "11"}
    assert states["10"].state == "cancelled"
    assert states["11"].exit_code == 3 and not states["11"].active


def test_unknown_state_does_not_crash():
    st = slurm.JobState("1", "SOMETHING_NEW")
    assert st.state == "unknown" and st.active


def test_srun_argv_carries_the_warning_signal_and_options(transport):
    res = Resources(job_name="j", time="10", warning_seconds=45, chdir="/d", partition="p", cpus=4, mem="1G",
                    qos="q", extra=("--exclusive",))
    argv = slurm.Slurm(transport, {"srun": "/opt/srun"}).srun_argv(res, ["py", "node-run", "s"])
    assert argv[0] == "/opt/srun"
    assert "--signal=USR1@45" in argv and "--partition=p" in argv and "--cpus-per-task=4" in argv
    assert "--qos=q" in argv and not any(a.startswith("--gpus") for a in argv)
    assert argv[-5:] == ["--exclusive", "--", "py", "node-run", "s"]


def test_batch_and_srun_options_are_the_same_resources():
    res = Resources(job_name="j", time="10", warning_seconds=45, chdir="/d", partition="p", cpus=4, gpus="1",
                    account="a")
    batch = dict(slurm.long_options(res, output="/o"))
    srun = dict(slurm.long_options(res))
    assert batch.pop("output") == "/o" and batch.pop("signal") == "B:USR1@45" and srun.pop("signal") == "USR1@45"
    assert srun.pop("ntasks") == "1"
    assert batch == srun == {"job-name": "j", "chdir": "/d", "time": "10", "nodes": "1", "partition": "p",
                             "cpus-per-task": "4", "gpus": "1", "account": "a"}
