"""The config file and the run options are one typed schema: every wrong type
is a one-line SpecError naming the file, the key and the fix."""

import subprocess
import sys
from pathlib import Path

import pytest

from kindslurm import config, spec
from kindslurm.errors import SpecError


@pytest.fixture
def user_file(no_site_config: Path, monkeypatch: pytest.MonkeyPatch):
    path = no_site_config / "user.yaml"
    monkeypatch.setenv("KINDSLURM_CONFIG", str(path))

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


def load_error(text: str, user_file) -> str:
    path = user_file(text)
    with pytest.raises(SpecError) as info:
        config.load()
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    return message


def test_unquoted_time_is_read_as_written_not_as_sexagesimal_minutes(user_file, tmp_path):
    """YAML 1.1 reads `1:30:00` as the integer 5400; sbatch would read --time=5400 as 90 hours."""
    user_file("time: 1:30:00\n")
    cfg = config.load()
    assert cfg.time == "1:30:00"
    script = tmp_path / "w.sh"
    script.write_text("true\n")
    built = spec.build(cfg, mode="sbatch", script=str(script), script_args=[], manifests=[], name=None)
    assert built.time == "1:30:00" and built.time_seconds == 90 * 60


@pytest.mark.parametrize("text,key,value", [
    ("time: 90\n", "time", "90"),  # minutes, as sbatch reads --time=90
    ("time: 1:30\n", "time", "1:30"),
    ("mem: 4096\n", "mem", "4096"),
    ("account: 012345\n", "account", "012345"),  # not octal 5349
    ("gpus: 2\n", "gpus", "2"),
    ("timeout: 2024-01-01\n", "timeout", "2024-01-01"),  # not a date object
    ("keep_on_failure: no\n", "keep_on_failure", False),
    ("keep_on_failure: true\n", "keep_on_failure", True),
    ("workers: 2\n", "workers", 2),
    ("cpus: null\n", "cpus", None),
    ("sbatch_args:\n", "sbatch_args", []),
    ("tools:\n", "tools", {}),
])
def test_values_are_read_as_a_slurm_user_means_them(user_file, text, key, value):
    user_file(text)
    assert getattr(config.load(), key) == value


@pytest.mark.parametrize("text,expected", [
    ('keep_on_failure: "no"\n', "`keep_on_failure` must be true or false (got 'no'): write keep_on_failure: true or keep_on_failure: false, without quotes"),
    ("sbatch_args: --exclusive\n", '`sbatch_args` must be a list (got \'--exclusive\'): use a list: sbatch_args: ["--exclusive"]'),
    ("extra_mounts: /a:/b\n", '`extra_mounts` must be a list'),
    ("load_images: {a: b}\n", "`load_images` must be a list of strings"),
    ("extra_mounts: [1]\n", "`extra_mounts[0]` must be a string (got 1): quote it"),
    ("workers: two\n", "`workers` must be a whole number (got 'two'): write e.g. workers: 1"),
    ("workers: '2'\n", "`workers` must be a whole number (got '2'): write workers: 2, without quotes"),
    ("workers: true\n", "`workers` must be a whole number (got True)"),
    ("workers: 1.5\n", "`workers` must be a whole number (got '1.5')"),
    ("workers:\n", "`workers` is empty: give it a value or delete the line"),
    ("cpus: [1]\n", "`cpus` must be a whole number (got [1]): write e.g. cpus: 8"),
    ("warning_seconds: {a: 1}\n", "`warning_seconds` must be a whole number"),
    ("tools: [kind]\n", "`tools` must be a mapping of tool name to path (got ['kind']): write e.g. tools: {kind: /opt/kind/bin/kind}"),
    ("tools: {kind: 5}\n", "`tools.kind` must be a path (got 5)"),
    ("tools: {5: /bin/x}\n", "unknown tool 5"),
    ("time: [1]\n", '`time` must be a string (got [1]): write e.g. time: "01:30:00"'),
    ("time:\n", "`time` is empty"),
    ("kind_config: true\n", "`kind_config` must be a string (got True)"),
    ("partition: {a: b}\n", "`partition` must be a string"),
])
def test_wrong_types_name_the_file_the_key_and_the_fix(user_file, text, expected):
    assert expected in load_error(text, user_file)


def test_unknown_tools_and_keys_still_list_the_valid_ones(user_file):
    assert "unknown tool 'kinda'" in load_error("tools: {kinda: /x}\n", user_file)
    message = load_error("1: x\nfoo: y\n", user_file)  # mixed key types must not break sorting
    assert "unknown key" in message and "valid keys are" in message


@pytest.mark.parametrize("content", [b"time: \xff\xfe\n", b"- just\n- a list\n", b"time: [unclosed\n"])
def test_unreadable_or_odd_files_are_one_line_errors(no_site_config, monkeypatch, content):
    path = no_site_config / "user.yaml"
    path.write_bytes(content)
    monkeypatch.setenv("KINDSLURM_CONFIG", str(path))
    with pytest.raises(SpecError, match="config file") as info:
        config.load()
    assert "\n" not in str(info.value)


def test_site_file_errors_name_the_site_file(no_site_config, monkeypatch):
    site = no_site_config / "site.yaml"
    site.write_text("workers: many\n")
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(site))
    with pytest.raises(SpecError, match=f"config file {site}: `workers`"):
        config.load()


def test_lists_from_files_replace_and_from_the_command_line_append(no_site_config, monkeypatch):
    site = no_site_config / "site.yaml"
    site.write_text("sbatch_args: [--exclusive]\ntools: {kind: /opt/kind}\n")
    user = no_site_config / "user.yaml"
    user.write_text("sbatch_args: [--constraint=gpu]\ntools: {podman: /opt/podman}\n")
    monkeypatch.setenv("KINDSLURM_SITE_CONFIG", str(site))
    monkeypatch.setenv("KINDSLURM_CONFIG", str(user))
    cfg = config.load({"sbatch_args": ("--hold",), "workers": 1, "keep_on_failure": None})
    assert cfg.sbatch_args == ["--constraint=gpu", "--hold"]
    assert cfg.tools == {"kind": "/opt/kind", "podman": "/opt/podman"}
    assert cfg.workers == 1 and cfg.keep_on_failure is False


def test_command_line_values_are_checked_by_the_same_schema(no_site_config):
    with pytest.raises(SpecError, match=r"--workers must be a whole number \(got 'two'\)"):
        config.load({"workers": "two"})


@pytest.mark.parametrize("args", [
    ["--array=1-3"], ["--array", "1-3"], ["-a", "1-3"], ["-a1-3"], ["--arr=1-3"], ["-Ha1-3"], ["--array 1-3"],
])
def test_job_arrays_are_refused_in_every_spelling(args):
    problem = config.sbatch_args_problem(args)
    assert problem is not None and "job array" in problem and "one `kindslurm run` per task" in problem


@pytest.mark.parametrize("arg,expected", [
    ("--output=x.out", "job output"), ("-ox.out", "job output"), ("--error=e", "job output"),
    ("--chdir=/tmp", "cd there"), ("-D/tmp", "cd there"), ("--signal=USR1@30", "warning_seconds"),
    ("--nodes=2", "one node"), ("-N2", "one node"), ("--nodes", "one node"), ("--ntasks=4", "--cpus"),
    ("--wrap=hostname", "workload script"), ("--parsable", "kindslurm run --parsable"),
    ("--comment=x", "comment"), ("--time=10", "use --time"), ("-t10", "use --time"),
    ("--partition=debug", "use --partition"), ("--cpus-per-task=2", "use --cpus"), ("--mem=1G", "use --mem"),
    ("--gpus=1", "use --gpus"), ("-A", "use --account"), ("--qos=high", "use --qos"),
    ("gpu", "not an option"), ("--", "not an option"), ("--constraint gpu", "holds a space"),
    ("-w node1", "holds a space"),
])
def test_options_kindslurm_sets_or_cannot_honour_are_refused(arg, expected):
    problem = config.sbatch_args_problem([arg])
    assert problem is not None and expected in problem


@pytest.mark.parametrize("args", [
    [], ["--exclusive"], ["--constraint=gpu"], ["-Cgpu"], ["--nodes=1"], ["-N1"], ["--ntasks=1"], ["--hold"],
    ["--time-min=10"], ["--mem-per-cpu=2G"], ["--gpus-per-node=1"], ["--exclude=node1"], ["-W"],
])
def test_ordinary_options_pass(args):
    assert config.sbatch_args_problem(args) is None


def test_arrays_are_refused_from_the_config_file_and_the_command_line(user_file):
    message = load_error("sbatch_args: [--array=1-3]\n", user_file)
    assert "sbatch_args '--array=1-3' asks for a job array" in message
    user_file("")
    with pytest.raises(SpecError, match=r"^--sbatch-arg '-a' asks for a job array"):
        config.load({"sbatch_args": ["-a", "1-3"]})


def test_help_and_importing_config_do_not_load_msgspec():
    help_ = subprocess.run([sys.executable, "-X", "importtime", "-m", "kindslurm", "--help"],
                           capture_output=True, text=True, timeout=60)
    assert help_.returncode == 0 and "Usage" in help_.stdout
    assert "msgspec" not in help_.stderr
    probe = subprocess.run([sys.executable, "-c", "import sys, kindslurm.config, kindslurm.spec; print('msgspec' in sys.modules)"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "False", probe.stderr
