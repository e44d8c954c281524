"""Hostile strings in every value that reaches the batch script, srun's argv and
kind's config: each one arrives exactly as given, or is refused with a SpecError.

The batch script is checked twice per `#SBATCH` line: by bash itself, and by a
port of sbatch's own line parser (sbatch reads those lines, not bash).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kindslurm.cluster import kindconfig
from kindslurm import api
from kindslurm.scheduler import render
from kindslurm.config import Config
from kindslurm.errors import SpecError
from kindslurm.paths import JobPaths
from kindslurm.scheduler.base import Resources
from kindslurm.scheduler.slurm import Slurm
from kindslurm.transport.local import LocalTransport
from kindslurm.spec import JobSpec

FRAGMENTS = ["'", '"', "\\", "$(id)", "`id`", ";", "&&", "|", "%", "%j", "\n", "\r", "\t", " ", "-", "--", "#", "*",
             "?", "~", "!", "{a,b}", "é", "日本", "\u00a0", "\u2028", "\0", "$HOME", "${x}", "'\"'\"'", "=", ":", "/",
             "..", "hetjob", "\x0b", "\x0c", "--uid=0", "-x", "\\'"]
hostile = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), max_size=8).map("".join)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def base_spec(**kw: object) -> JobSpec:
    values: dict[str, object] = dict(run_id="r1", mode="sbatch", prefix="ks-u", user="u", submit_dir="/home/u/proj",
                                     job_dir="/home/u/jobs/r1", time="00:10:00", warning_seconds=60)
    values.update(kw)
    return JobSpec(**values)  # type: ignore[arg-type]


# -- sbatch's reading of an #SBATCH line ------------------------------------------

_C_SPACE = b" \t\n\v\f\r"


def sbatch_words(line: bytes) -> list[bytes]:
    """Port of the argument loop of sbatch's _get_argument (src/sbatch/opt.c). Checked
    against sbatch 22.05 here: quotes group as in bash, a backslash escapes the next
    byte even inside single quotes, an unquoted # ends the line, '' ends it too."""
    words: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in _C_SPACE:
            i += 1
        if i >= n:
            return words
        arg, quote, escape = bytearray(), 0, False
        while i < n and (quote or line[i] not in _C_SPACE) and line[i] != 0x0A:
            c = line[i]
            if escape:
                escape = False
            elif c == 0x5C:
                escape, i = True, i + 1
                continue
            elif quote:
                if c == quote:
                    quote, i = 0, i + 1
                    continue
            elif c in b"\"'":
                quote, i = c, i + 1
                continue
            elif c == 0x23:
                break
            arg.append(c)
            i += 1
        if quote:
            raise ValueError(f"sbatch: unmatched quote in {line!r}")
        if not arg:
            return words
        words.append(bytes(arg))


def test_the_sbatch_port_reads_what_sbatch_read_here() -> None:
    assert sbatch_words(b" --job-name='a b' --comment=\"a'b\"") == [b"--job-name=a b", b"--comment=a'b"]
    assert sbatch_words(b"--job-name='a\\b'") == [b"--job-name=ab"]
    assert sbatch_words(b"--job-name='it'\"'\"'s' x#y z") == [b"--job-name=it's", b"x"]


def bash_words(lines: list[str]) -> list[list[str]]:
    """How bash splits each line into words, all lines in one bash."""
    script = "".join(f'set -- {line}\nprintf "%s\\0" "$#" "$@"\n' for line in lines)
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout.decode().split("\0")
    words, i = [], 0
    for _ in lines:
        count = int(out[i])
        words.append(out[i + 1:i + 1 + count])
        i += 1 + count
    return words


def sbatch_lines(text: str) -> list[str]:
    head = text.split("\n\n", 1)[0].split("\n")
    return [line[len("#SBATCH"):] for line in head if line.startswith("#SBATCH")]


def expected_sbatch(spec: JobSpec) -> list[str]:
    want = [f"--job-name=kindslurm-{spec.prefix}", f"--output={JobPaths(Path(spec.job_dir)).slurm_out}",
            f"--chdir={spec.submit_dir}", f"--time={spec.time}", "--nodes=1", f"--signal=B:USR1@{spec.warning_seconds}"]
    for flag, value in (("partition", spec.partition), ("cpus-per-task", spec.cpus), ("mem", spec.mem),
                        ("gpus", spec.gpus), ("account", spec.account), ("qos", spec.qos)):
        if value:
            want.append(f"--{flag}={value}")
    return want + list(spec.sbatch_args)


def refusal_justified(spec: JobSpec) -> bool:
    on_lines = expected_sbatch(spec)
    if any(c in v for v in on_lines for c in "\\\n\0"):
        return True
    if "%" in str(JobPaths(Path(spec.job_dir)).slurm_out):
        return True
    if any(not a.startswith("-") or a in ("-", "--") for a in spec.sbatch_args):
        return True
    return any(c in v for v in (spec.run_id, str(JobPaths(Path(spec.job_dir)).spec)) for c in "\n\0")


def check_batch_script(spec: JobSpec, command: list[str]) -> None:
    try:
        text = render.render(spec, command=command)
    except SpecError as e:
        assert "\n" not in str(e)
        assert refusal_justified(spec) or any(c in w for w in command for c in "\n\0"), f"needless refusal: {e}"
        return
    assert not refusal_justified(spec), "rendered a value sbatch would misread"
    subprocess.run(["bash", "-n"], input=text.encode(), check=True)
    lines = sbatch_lines(text)
    want = expected_sbatch(spec)
    assert bash_words(lines) == [[w] for w in want]
    assert [sbatch_words(line.encode()) for line in lines] == [[w.encode()] for w in want]


SBATCH_FIELDS = ["prefix", "job_dir", "submit_dir", "time", "partition", "mem", "gpus", "account", "qos"]


@SETTINGS
@given(field=st.sampled_from(SBATCH_FIELDS), value=hostile)
def test_each_sbatch_value_is_one_word_for_bash_and_for_sbatch(field: str, value: str) -> None:
    check_batch_script(base_spec(**{field: value}), ["/usr/bin/kindslurm"])


@SETTINGS
@given(args=st.lists(hostile, max_size=3))
def test_extra_sbatch_options_are_one_line_and_one_word_each(args: list[str]) -> None:
    check_batch_script(base_spec(sbatch_args=args), ["/usr/bin/kindslurm"])


@SETTINGS
@given(run_id=hostile, job_dir=hostile, arg=hostile)
def test_the_script_body_passes_every_value_through_unchanged(tmp_path_factory: pytest.TempPathFactory,
                                                              run_id: str, job_dir: str, arg: str) -> None:
    spec = base_spec(run_id=run_id, job_dir=job_dir)
    command = ["bash", "-c", 'printf "%s\\0" "$KINDSLURM_RUN_ID" "$@"', "argv0", arg]
    try:
        text = render.render(spec, command=command)
    except SpecError as e:
        assert refusal_justified(spec) or any(c in arg for c in "\n\0"), f"needless refusal: {e}"
        return
    cwd = tmp_path_factory.mktemp("run")
    res = subprocess.run(["bash", "-c", text], cwd=cwd, capture_output=True, timeout=20,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)})
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().split("\0")[:-1] == [run_id, arg, "node-run", str(JobPaths(Path(job_dir)).spec)]
    assert list(cwd.iterdir()) == []


@SETTINGS
@given(configured=hostile)
def test_a_configured_kindslurm_command_is_words_that_start_with_a_program(configured: str) -> None:
    try:
        words = render.kindslurm_command(configured)
    except SpecError as e:
        assert "\n" not in str(e).replace(repr(configured), "")
        return
    if not configured:
        return
    assert words and not words[0].startswith("-")


# -- srun's argv --------------------------------------------------------------------

def srun_program_index(argv: list[str]) -> int:
    """Where srun's getopt ("+": stop at the first non-option) finds the program,
    for options whose values are attached (--flag=value)."""
    i = 1
    while i < len(argv):
        if argv[i] == "--":
            return i + 1
        if not argv[i].startswith("-") or argv[i] == "-":
            return i
        i += 1
    return i


def check_srun(argv: list[str], options: dict[str, str], command: list[str]) -> None:
    assert not any("\0" in a for a in argv), "a NUL cannot pass through exec"
    assert argv[srun_program_index(argv):] == command
    for flag, value in options.items():
        assert [a for a in argv if a.startswith(flag + "=")] == [f"{flag}={value}"]


def srun_options(**values: str | None) -> dict[str, str]:
    return {f"--{k.replace('_', '-')}": v for k, v in values.items() if v}


@SETTINGS
@given(job_name=hostile, time=hostile, output_dir=hostile, partition=hostile, mem=hostile, gpus=hostile,
       account=hostile, qos=hostile, extra=st.lists(hostile, max_size=3), command=st.lists(hostile, min_size=1, max_size=3))
def test_srun_argv_keeps_each_value_in_its_own_option(job_name: str, time: str, output_dir: str, partition: str,
                                                        mem: str, gpus: str, account: str, qos: str,
                                                        extra: list[str], command: list[str]) -> None:
    try:
        res = Resources(job_name=job_name, time=time, warning_seconds=60, chdir=output_dir, partition=partition,
                        mem=mem, gpus=gpus, account=account, qos=qos, extra=tuple(extra))
        argv = Slurm(LocalTransport()).srun_argv(res, command)
    except SpecError:
        return
    opts = srun_options(job_name=job_name, time=time, chdir=output_dir, partition=partition, mem=mem, gpus=gpus,
                        account=account, qos=qos)
    check_srun(argv, opts, command)
    for arg in extra:
        assert arg in argv[:srun_program_index(argv)]


@SETTINGS
@given(field=st.sampled_from(["prefix", "time", "submit_dir", "partition", "mem", "account", "qos", "job_dir"]),
       value=hostile, configured=st.one_of(st.none(), hostile))
def test_srun_command_of_a_run(field: str, value: str, configured: str | None) -> None:
    spec = base_spec(mode="srun", **{field: value})
    try:
        argv = api.srun_command(spec, Config(kindslurm_command=configured), Slurm(LocalTransport()))
    except SpecError:
        return
    program = render.kindslurm_command(configured)
    opts = srun_options(job_name=f"kindslurm-{spec.prefix}", time=spec.time, chdir=spec.submit_dir,
                        partition=spec.partition, mem=spec.mem, account=spec.account, qos=spec.qos)
    check_srun(argv, opts, [*program, "node-run", str(JobPaths(Path(spec.job_dir)).spec)])


# -- kind's config ---------------------------------------------------------------------

@SETTINGS
@given(submit_dir=hostile, host=hostile, container=hostile, readonly=st.booleans())
def test_kind_config_mounts_round_trip_through_yaml(submit_dir: str, host: str, container: str, readonly: bool) -> None:
    mount = f"{host}:{container}" + (":ro" if readonly else "")
    try:
        text = kindconfig.render(base_spec(submit_dir=submit_dir, extra_mounts=[mount]))
    except SpecError:
        return
    app, got = yaml.safe_load(text)["nodes"][0]["extraMounts"]
    assert app == {"hostPath": submit_dir, "containerPath": "/app"}
    if ":" in host or ":" in container:
        # the string has more than one reading: the one taken must give the string back
        assert ":" not in got["hostPath"] and ":" not in got["containerPath"]
        assert f"{got['hostPath']}:{got['containerPath']}" + (":ro" if got.get("readOnly") else "") == mount
    else:
        assert got == {"hostPath": host, "containerPath": container, **({"readOnly": True} if readonly else {})}


@SETTINGS
@given(submit_dir=hostile)
def test_kind_config_submit_dir_round_trips_through_yaml(submit_dir: str) -> None:
    cfg = yaml.safe_load(kindconfig.render(base_spec(submit_dir=submit_dir)))
    assert cfg["nodes"][0]["extraMounts"] == [{"hostPath": submit_dir, "containerPath": "/app"}]
