"""The batch script: golden file, shell syntax, and quoting of hostile values.

Regenerate the golden file on purpose with KINDSLURM_REGEN_GOLDEN=1.
"""

import os
import subprocess
from pathlib import Path

import pytest

from kindslurm.scheduler import render
from kindslurm.errors import SpecError
from kindslurm.spec import JobSpec

GOLDEN = Path(__file__).parent / "golden" / "slurm.sh"


def make_spec(**kw) -> JobSpec:
    base = dict(run_id="20261125-000000-abcdef", mode="sbatch", prefix="ks-alice", user="alice",
                submit_dir="/home/alice/proj", job_dir="/home/alice/.local/share/kindslurm/jobs/20261125-000000-abcdef",
                script="/home/alice/proj/w.sh", time="00:20:00", cpus=4, mem="8G", partition="debug",
                sbatch_args=["--exclusive"], warning_seconds=60)
    base.update(kw)
    return JobSpec(**base)


def test_golden():
    text = render.render(make_spec(), command=["/usr/bin/python3", "-m", "kindslurm"])
    if os.environ.get("KINDSLURM_REGEN_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_script_is_valid_bash_and_asks_for_the_warning_signal():
    text = render.render(make_spec())
    subprocess.run(["bash", "-n"], input=text, text=True, check=True)
    assert "#SBATCH --signal=B:USR1@60" in text
    assert "#SBATCH --mem=8G" in text and "#SBATCH --gpus" not in text


def test_hostile_values_are_quoted(tmp_path):
    evil = "/tmp/x'; touch " + str(tmp_path / "pwned") + "; echo '"
    spec = make_spec(job_dir=evil, run_id="r$(touch " + str(tmp_path / "pwned2") + ")")
    text = render.render(spec, command=["echo"])
    # run the body (not the #SBATCH lines) with a harmless command; nothing may be created
    subprocess.run(["bash", "-c", text], capture_output=True, timeout=10)
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_newlines_are_refused():
    with pytest.raises(SpecError, match="newline"):
        render.render(make_spec(partition="debug\n#SBATCH --uid=0"))


def test_user_template(tmp_path):
    tpl = tmp_path / "t.j2"
    tpl.write_text("#!/bin/bash\n#SBATCH --time={{ spec.time | q }}\n{{ command | qjoin }} node-run {{ paths.spec | q }}\n")
    text = render.render(make_spec(), str(tpl), ["k"])
    assert text.endswith("k node-run /home/alice/.local/share/kindslurm/jobs/20261125-000000-abcdef/spec.json\n")
    with pytest.raises(SpecError, match="does not exist"):
        render.render(make_spec(), str(tmp_path / "none.j2"))
    tpl.write_text("{{ spec.nope }}")
    with pytest.raises(SpecError, match="failed to render"):
        render.render(make_spec(), str(tpl))


@pytest.mark.parametrize("field, value, message", [
    ("job_dir", "/home/alice/jobs/a%jb", "contains '%', which sbatch expands in --output"),
    ("job_dir", "/home/alice/jobs/a\\b", "job directory .* contains a backslash"),
    ("submit_dir", "/home/alice/a\\b", "submit directory .* contains a backslash"),
    ("account", "proj\\x", "account .* contains a backslash"),
    ("sbatch_args", ["--comment=a\\b"], "sbatch option .* contains a backslash"),
    ("sbatch_args", ["hostname"], "'hostname' is not an option"),
])
def test_values_sbatch_would_misread_are_refused(field, value, message):
    # sbatch reads `\` as an escape even inside single quotes and expands % in --output
    with pytest.raises(SpecError, match=message) as e:
        render.render(make_spec(**{field: value}))
    assert "\n" not in str(e.value)


def test_spaces_and_quotes_are_quoted_as_sbatch_reads_them():
    # sbatch 22.05 took exactly this line as --chdir=/home/alice/a b/it's
    text = render.render(make_spec(submit_dir="/home/alice/a b/it's"))
    assert "#SBATCH --chdir='/home/alice/a b/it'\"'\"'s'\n" in text


def test_a_configured_command_must_start_with_a_program():
    assert render.kindslurm_command("/opt/ks/bin/kindslurm --verbose") == ["/opt/ks/bin/kindslurm", "--verbose"]
    for bad, message in (("-x foo", "does not start with a program"), ("   ", "does not start with a program"),
                         ("'/opt/ks", "not valid shell words")):
        with pytest.raises(SpecError, match=message):
            render.kindslurm_command(bad)
