"""Batch scripts from jinja2 templates.

Every value that reaches the shell goes through the `q` filter (shlex.quote)
or `qjoin`; the environment is strict, so a typo in a template fails loudly
instead of rendering an empty string into a command line.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from kindslurm.errors import SpecError
from kindslurm.paths import JobPaths
from kindslurm.spec import JobSpec

DEFAULT_TEMPLATE = "slurm.sh.j2"


def _quote(value: object) -> str:
    text = str(value)
    if "\n" in text or "\0" in text:
        raise SpecError(f"value {text!r} contains a newline: remove it")
    return shlex.quote(text)


def _qjoin(values: list[object]) -> str:
    return " ".join(_quote(v) for v in values)


def default_template_text() -> str:
    repo = Path(__file__).resolve().parent.parent / "batch_templates" / DEFAULT_TEMPLATE
    if repo.is_file():
        return repo.read_text()
    from importlib import resources

    return resources.files("kindslurm.batch_templates").joinpath(DEFAULT_TEMPLATE).read_text()


def kindslurm_command(configured: str | None) -> list[str]:
    """How the job calls us back: the same interpreter, so the node runs this install."""
    return shlex.split(configured) if configured else [sys.executable, "-m", "kindslurm"]


def _bytecode_cache():  # type: ignore[no-untyped-def]
    """Compiled templates cached per user: compiling costs more than rendering."""
    import jinja2

    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(base, "kindslurm", "jinja")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
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
    import jinja2

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
            paths=JobPaths(Path(spec.job_dir)),
            job_name=f"kindslurm-{spec.prefix}",
            command=command or kindslurm_command(None),
            template_name=name,
        )
    except jinja2.TemplateError as e:
        raise SpecError(f"template {name} failed to render ({e}): fix the template") from None
