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


def cases(tmp_path: Path, script: Path) -> list[tuple[list[str], str]]:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: x\n  labels: {a: [b}\n")
    no_kind = tmp_path / "nokind.yaml"
    no_kind.write_text("apiVersion: v1\nmetadata: {name: x}\n")
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
    assert slurm_jobs() == before
    assert env.records() == []
    jobs_root = Path(env.vars["XDG_DATA_HOME"]) / "kindslurm" / "jobs"
    assert not jobs_root.exists() or not any(jobs_root.iterdir())


def test_bad_config_file(env: Env, tmp_path: Path, script: Path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("partiton: debug\n")
    env.vars["KINDSLURM_CONFIG"] = str(cfg)
    res = env.ks("run", str(script))
    assert res.returncode == 64
    assert "unknown key 'partiton'" in res.stderr and "valid keys are" in res.stderr


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
    assert slurm_jobs() == before and env.records() == []


def test_sbatch_refusal_leaves_nothing(env: Env, script: Path):
    """Slurm itself rejects the job (unknown feature): its error is shown, nothing stays."""
    res = env.ks("run", str(script), "--sbatch-arg=--constraint=nosuchfeature")
    assert res.returncode == 65, res.stderr
    assert res.stderr.startswith("kindslurm: error: sbatch refused the job")
    assert env.records() == []
