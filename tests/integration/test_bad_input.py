"""Bad input, typed as a new user would: one line naming the problem and the
fix, exit code 64, and nothing submitted, created or left running."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Env, sh, slurm_jobs

pytestmark = pytest.mark.slurm


@pytest.fixture
def script(tmp_path: Path) -> Path:
    p = tmp_path / "w.sh"
    p.write_text("#!/bin/bash\necho hi\n")
    return p


def assert_nothing_submitted(env: Env, before: list[str]) -> None:
    """No new Slurm job (jobs of earlier tests may leave the queue meanwhile), no record, no job directory."""
    assert set(slurm_jobs()) - set(before) == set()
    assert env.records() == []
    jobs_root = Path(env.vars["XDG_DATA_HOME"]) / "kindslurm" / "jobs"
    assert not jobs_root.exists() or not any(jobs_root.iterdir())


def cases(tmp_path: Path, script: Path) -> list[tuple[list[str], str]]:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  labels: {a: [b}\n")
    no_kind = tmp_path / "nokind.yaml"
    no_kind.write_text("apiVersion: v1\nmetadata: {name: x}\n")
    int_kind = tmp_path / "intkind.yaml"
    int_kind.write_text("apiVersion: v1\nkind: 5\nmetadata: {name: x}\n")
    str_meta = tmp_path / "strmeta.yaml"
    str_meta.write_text("apiVersion: v1\nkind: Pod\nmetadata: foo\n")
    return [
        (["run", str(script), "--time", "2h"], "bad time limit '2h': use Slurm's format"),
        (["run", str(tmp_path / "missing.sh")], "workload script"),
        (["run", str(tmp_path)], "is not a regular file"),
        (["run", str(script), "--manifest", str(bad_yaml)], "is not valid YAML"),
        (["run", str(script), "--manifest", str(no_kind)], "lacks apiVersion or kind"),
        (["run", str(script), "--partition", "nosuchpart"], "unknown partition 'nosuchpart': use one of debug"),
        (["run", str(script), "--name", "MyCluster"], "not valid for kind"),
        (["run", str(script), "--name", "x" * 40], "at most 32"),
        (["run", str(script), "--mem", "lots"], "bad memory size"),
        (["run", str(script), "--workers", "-1"], "bad --workers"),
        (["run", str(script), "--mount", "/nonexistent-dir:/data"], "does not exist"),
        (["run", str(script), "--load-image", str(tmp_path / "none.tar")], "image archive"),
        (["run", str(script), "--timeout", "soon"], "bad timeout"),
        (["run", str(script), "--timeout", "0"], "bad timeout '0': give a positive duration"),
        (["run", str(script), "--time", "00:00:00"], "is zero, which Slurm reads as no limit"),
        (["run", str(script), "--time", "UNLIMITED"], "give a finite time"),
        (["run", str(script), "--sbatch-arg=--array=1-3"], "asks for a job array"),
        (["run", str(script), "--sbatch-arg", "-a", "--sbatch-arg", "1-3"], "asks for a job array"),
        (["run", str(script), "--sbatch-arg=--output=/tmp/x.out"], "would move the job output"),
        (["run", str(script), "--sbatch-arg=--nodes=2"], "a kind cluster lives on one"),
        (["run", str(script), "--manifest", str(int_kind)], "kind must be a string (got 5): write e.g. kind: Job"),
        (["run", str(script), "--manifest", str(str_meta)], "metadata must be a mapping (got 'foo')"),
        (["run", str(script), "--srun", "--local"], "exclude each other"),
        (["run"], "nothing to run"),
        (["run", str(script), "--template", str(tmp_path / "none.j2")], "template"),
    ]


def test_each_bad_input_gets_one_line_and_nothing_is_submitted(env: Env, tmp_path: Path, script: Path):
    before = slurm_jobs()
    for argv, expected in cases(tmp_path, script):
        res = env.ks(*argv)
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 64, (argv, res.returncode, res.stderr)
        assert len(lines) == 1 and lines[0].startswith("kindslurm: error: "), (argv, res.stderr)
        assert expected in lines[0], (argv, lines[0])
        assert res.stdout == "", (argv, res.stdout)
    assert_nothing_submitted(env, before)


def test_bad_config_file(env: Env, tmp_path: Path, script: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("partiton: debug\n")
    env.vars["KINDSLURM_CONFIG"] = str(cfg)
    res = env.ks("run", str(script))
    assert res.returncode == 64
    assert "unknown key 'partiton'" in res.stderr and "valid keys are" in res.stderr


@pytest.mark.parametrize("text,expected", [
    ("workers: two\n", "`workers` must be a whole number (got 'two')"),
    ("cpus: [1]\n", "`cpus` must be a whole number (got [1])"),
    ('keep_on_failure: "no"\n', "`keep_on_failure` must be true or false (got 'no')"),
    ("sbatch_args: --exclusive\n", 'use a list: sbatch_args: ["--exclusive"]'),
    ("sbatch_args: [--array=1-3]\n", "asks for a job array"),
    ("tools: [kind]\n", "`tools` must be a mapping of tool name to path"),
])
def test_bad_config_values_get_one_line_and_nothing_is_submitted(env: Env, tmp_path: Path, script: Path, text: str, expected: str):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(text)
    env.vars["KINDSLURM_CONFIG"] = str(cfg)
    before = slurm_jobs()
    res = env.ks("run", str(script))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 64, res.stderr
    assert len(lines) == 1 and lines[0].startswith(f"kindslurm: error: config file {cfg}: "), res.stderr
    assert expected in lines[0]
    assert_nothing_submitted(env, before)


def test_unquoted_time_in_the_config_is_not_read_as_5400_minutes(env: Env, tmp_path: Path, script: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("time: 1:30:00\n")
    env.vars["KINDSLURM_CONFIG"] = str(cfg)
    res = env.ks("run", str(script), "--dry-run")
    assert res.returncode == 0, res.stderr
    assert "#SBATCH --time=1:30:00\n" in res.stdout and "5400" not in res.stdout


def test_unknown_run(env: Env):
    for cmd in ("status", "logs", "cancel"):
        res = env.ks(cmd, "999999")
        assert res.returncode == 64 and "no run '999999'" in res.stderr


def test_dry_run_prints_a_valid_script_and_submits_nothing(env: Env, script: Path):
    before = slurm_jobs()
    res = env.ks("run", str(script), "--dry-run", "--time", "30", "--cpus", "2", "--sbatch-arg=--exclusive")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("#!/bin/bash") and "#SBATCH --signal=B:USR1@60" in res.stdout
    assert "#SBATCH --cpus-per-task=2" in res.stdout and "#SBATCH --exclusive" in res.stdout
    assert sh(["bash", "-n"], input=res.stdout).returncode == 0
    srun = env.ks("run", "--srun", str(script), "--dry-run")
    assert srun.returncode == 0 and srun.stdout.startswith("srun ") and "--signal=USR1@60" in srun.stdout
    assert set(slurm_jobs()) - set(before) == set() and env.records() == []


def test_sbatch_refusal_leaves_nothing(env: Env, script: Path):
    """Slurm itself rejects the job (unknown feature): its error is shown, nothing stays."""
    res = env.ks("run", str(script), "--sbatch-arg=--constraint=nosuchfeature")
    assert res.returncode == 65, res.stderr
    assert res.stderr.startswith("kindslurm: error: sbatch refused the job")
    assert env.records() == []
