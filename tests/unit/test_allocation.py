"""Where `kindslurm run` goes inside an allocation, and cluster names that never
clash between runs sharing one."""

from kindslurm.node import allocation
from kindslurm import naming
from kindslurm.spec import JobSpec


def test_hostlists_expand_like_slurm():
    assert allocation.expand_hostlist("n[01-03,7],gpu5") == ["n01", "n02", "n03", "n7", "gpu5"]
    assert allocation.expand_hostlist("r[1-2]-n[1-2]") == ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]
    assert allocation.expand_hostlist("single") == ["single"]
    assert allocation.expand_hostlist("") == []


def test_outside_an_allocation_run_submits():
    assert allocation.placement({}, "login1") is None


def test_an_salloc_shell_on_a_login_node_uses_srun_not_the_login_node():
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node[1-4]"}
    assert allocation.placement(env, "login1") == "srun"
    assert allocation.placement(env, "node3.cluster.example") == "inline"


def test_a_step_on_a_compute_node_runs_inline():
    env = {"SLURM_JOB_ID": "42", "SLURM_JOB_NODELIST": "node1", "SLURMD_NODENAME": "node1", "SLURM_STEP_ID": "0"}
    assert allocation.placement(env, "whatever") == "inline"
    assert allocation.current(env).step_id == "0"


def _spec(mode: str, run_id: str) -> JobSpec:
    return JobSpec(run_id=run_id, mode=mode, prefix="ks-u", user="u", submit_dir="/tmp", job_dir="/tmp/j")


def test_two_runs_in_one_allocation_get_different_names():
    env = {"SLURM_JOB_ID": "31", "SLURM_JOB_NODELIST": "n1"}
    a = allocation.cluster_name(_spec("inline", "20261202-101010-aaaaaa"), env)
    b = allocation.cluster_name(_spec("inline", "20261202-101010-bbbbbb"), env)
    assert a != b and a.startswith("ks-u-31-") and b.startswith("ks-u-31-")
    assert all(naming.KIND_NAME.match(n) for n in (a, b))


def test_tasks_of_one_srun_step_get_different_names():
    env = {"SLURM_JOB_ID": "31", "SLURM_STEP_ID": "2", "SLURM_JOB_NODELIST": "n1"}
    spec = _spec("srun", "20261202-101010-cccccc")
    names = {allocation.cluster_name(spec, {**env, "SLURM_PROCID": str(i)}) for i in range(3)}
    assert len(names) == 3 and all("-s2-" in n for n in names)


def test_an_sbatch_run_keeps_the_plain_job_name():
    assert allocation.cluster_name(_spec("sbatch", "r"), {"SLURM_JOB_ID": "77"}) == "ks-u-77"


def test_longest_allocation_name_stays_within_kinds_limit():
    name = naming.allocation_cluster_name("x" * naming.MAX_PREFIX, "12345678", "20261202-101010-abcdef", "123", "15")
    assert naming.KIND_NAME.match(name) and len(name) + len("-control-plane") <= 64, (name, len(name))


def test_the_node_sides_slurm_reads_are_here():
    env = {"SLURM_JOB_ID": "42", "SLURM_CPUS_ON_NODE": "8", "SLURM_MEM_PER_NODE": "bogus", "SLURM_JOB_GPUS": "0,2",
           "SLURM_JOB_END_TIME": "0"}
    alloc = allocation.current(env)
    assert alloc is not None and (alloc.cpus, alloc.mem_mb) == (8, None)
    assert allocation.gpus(env) == "0,2"
    assert allocation.end_time(env) is None and allocation.end_time({"SLURM_JOB_END_TIME": "1700000000"}) == 1700000000
    assert allocation.current({"SLURM_CPUS_ON_NODE": "8"}) is None
    assert allocation.cpuset()
