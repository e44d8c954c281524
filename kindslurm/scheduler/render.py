"""Batch scripts from jinja2 templates.

Every value that reaches the shell goes through the `q` filter (shlex.quote)
or `qjoin`; the environment is strict, so a typo in a template fails loudly
instead of rendering an empty string into a command line.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from kindslurm.errors import SpecError
from kindslurm.paths import JobPaths
from kindslurm.scheduler.slurm import long_options, resources_of
from kindslurm.spec import JobSpec

DEFAULT_TEMPLATE = "slurm.sh.j2"


def _quote(value: object) -> str:
    text = str(value)
    if "\n" in text or "\0" in text:
        raise SpecError(f"value {text!r} contains a newline: remove it")
    return shlex.quote(text)


def _qjoin(values: list[object]) -> str:
    return " ".join(_quote(v) for v in values)


def _sbatch_values(spec: JobSpec, job: JobPaths, job_name: str) -> list[tuple[str, str]]:
    values = [("job name", job_name), ("job directory", str(job.root)), ("submit directory", spec.submit_dir),
              ("time", spec.time)]
    for what, value in (("partition", spec.partition), ("mem", spec.mem), ("gpus", spec.gpus),
                        ("account", spec.account), ("qos", spec.qos)):
        if value:
            values.append((what, str(value)))
    return values + [("sbatch option", arg) for arg in spec.sbatch_args]


def check_sbatch_values(spec: JobSpec, job: JobPaths, job_name: str) -> None:
    """Refuse what sbatch would read differently from bash on an `#SBATCH` line.

    sbatch has its own parser for these lines: quotes group as in bash, but a
    backslash escapes the next character even inside single quotes, a line ends
    at a newline, and --output expands `%` patterns (%j, %u, ...), so such a
    value would silently mean something else (output written elsewhere).
    """
    for what, value in _sbatch_values(spec, job, job_name):
        for char, name in (("\\", "a backslash"), ("\n", "a newline"), ("\0", "a NUL")):
            if char in value:
                raise SpecError(f"{what} {value!r} contains {name}, which sbatch cannot take on an #SBATCH line: "
                                f"{_FIX[what]}")
    if "%" in str(job.slurm_out):
        raise SpecError(f"job directory {job.root} contains '%', which sbatch expands in --output: {_FIX['job directory']}")
    for arg in spec.sbatch_args:
        if not arg.startswith("-") or arg in ("-", "--"):
            raise SpecError(f"sbatch option {arg!r} is not an option: give each option with its value as one entry, "
                            f"e.g. --constraint=gpu")


_FIX = {
    "job name": "choose a --name without it",
    "job directory": "set job_root to a path without % or \\",
    "submit directory": "submit from a directory whose path has no backslash or line break",
    "time": "fix --time",
    "partition": "fix --partition",
    "mem": "fix --mem",
    "gpus": "fix --gpus",
    "account": "fix --account",
    "qos": "fix --qos",
    "sbatch option": "remove it from sbatch_args",
}


def default_template_text() -> str:
    """kindslurm/batch_templates is a link to the repository's top-level folder
    in a checkout and a copy of it in an installed package: one path for both."""
    return (Path(__file__).resolve().parent.parent / "batch_templates" / DEFAULT_TEMPLATE).read_text()


def kindslurm_command(configured: str | None) -> list[str]:
    """How the job calls us back: the same interpreter, so the node runs this install.

    A configured command must start with a program: a first word like `-x`
    would be read by srun as one of its own options.
    """
    if not configured:
        return [sys.executable, "-m", "kindslurm"]
    try:
        words = shlex.split(configured)
    except ValueError as e:
        raise SpecError(f"kindslurm_command {configured!r} is not valid shell words ({e}): fix its quoting") from None
    if not words or words[0].startswith("-"):
        raise SpecError(f"kindslurm_command {configured!r} does not start with a program: "
                        f"give the path of kindslurm first, e.g. /usr/local/bin/kindslurm")
    return words


def _private_dir(path: str, uid: int) -> bool:
    """The caller's own directory that nobody else could ever write to, made 0700
    (earlier versions left ~/.cache/kindslurm 0755)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if st.st_uid != uid or st.st_mode & 0o022:
            return False
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o700)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _trusted_parents(path: str, uid: int) -> bool:
    """No one but root and the caller can rename or replace anything on the way to `path`
    (a world-writable directory counts only with the sticky bit, as /tmp has)."""
    probe = path
    while True:
        try:
            st = os.stat(probe)
        except OSError:
            return False
        if st.st_uid not in (0, uid) or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
            return False
        parent = os.path.dirname(probe)
        if parent == probe:
            return True
        probe = parent


def _bytecode_cache():  # type: ignore[no-untyped-def]
    """Compiled templates cached per user: the first render in a process costs about
    6 ms without the cache and 0.6 ms with it.

    jinja2 runs whatever code the cache holds, so it is used only when nobody
    else can write to it: the directories kindslurm makes for it must be the
    caller's, 0700 and not symlinks, and everything above them safe from
    renames. Otherwise templates are compiled afresh, silently.
    """
    import jinja2

    uid = os.geteuid()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.path.isabs(base):
        return None
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        base = os.path.realpath(base)
        if not _trusted_parents(base, uid):
            return None
        path = base
        for name in ("kindslurm", "jinja"):
            path = os.path.join(path, name)
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                pass
            if not _private_dir(path, uid):
                return None
    except OSError:
        return None
    return jinja2.FileSystemBytecodeCache(path)


def _load(env, name: str, text: str):  # type: ignore[no-untyped-def]
    """A template from source text, through the environment's bytecode cache."""
    import jinja2

    loader = jinja2.DictLoader({name: text})
    env.loader = loader
    return env.get_template(name)


def render(spec: JobSpec, template: str | None = None, command: list[str] | None = None) -> str:
    """The batch script. Templates get `options`, the (name, value) pairs of the
    run's #SBATCH lines, besides `spec`, `paths`, `job_name` and `command`."""
    import jinja2

    job, job_name = JobPaths(Path(spec.job_dir)), f"kindslurm-{spec.prefix}"
    check_sbatch_values(spec, job, job_name)
    if template:
        path = Path(template).expanduser()
        if not path.is_file():
            raise SpecError(f"template {template} does not exist: pass an existing jinja2 file to --template")
        text, name = path.read_text(), str(path)
    else:
        text, name = default_template_text(), DEFAULT_TEMPLATE
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False, bytecode_cache=_bytecode_cache()
    )
    env.filters["q"] = _quote
    env.filters["qjoin"] = _qjoin
    try:
        tpl = _load(env, name, text)
        return tpl.render(
            spec=spec,
            paths=job,
            job_name=job_name,
            options=long_options(resources_of(spec), output=str(job.slurm_out)),
            command=command or kindslurm_command(None),
            template_name=name,
        )
    except jinja2.TemplateError as e:
        raise SpecError(f"template {name} failed to render ({e}): fix the template") from None
