"""Settings from defaults, the site file, the user's file and the CLI, in that order.

The site file (/etc/kindslurm/config.yaml, or KINDSLURM_SITE_CONFIG) lets an
admin point every user at a node image archive and at site binaries; the
user's file ($XDG_CONFIG_HOME/kindslurm/config.yaml, or KINDSLURM_CONFIG)
holds personal defaults. Unknown keys are errors that list the valid ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kindslurm import paths
from kindslurm.errors import SpecError

TOOLS = ("kind", "podman", "kubectl", "sbatch", "srun", "squeue", "sacct", "scancel", "sinfo", "scontrol")
SITE_CONFIG = Path("/etc/kindslurm/config.yaml")


@dataclass
class Config:
    # Slurm
    partition: str | None = None
    time: str = "01:00:00"
    cpus: int | None = None
    mem: str | None = None
    gpus: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_args: list[str] = field(default_factory=list)
    warning_seconds: int = 60
    # cluster
    workers: int = 0
    node_image: str | None = None
    node_image_archive: str | None = None
    extra_mounts: list[str] = field(default_factory=list)
    kind_config: str | None = None
    load_images: list[str] = field(default_factory=list)
    # workload
    timeout: str | None = None
    keep_on_failure: bool = False
    # where things go and what runs
    job_root: str | None = None
    template: str | None = None
    kindslurm_command: str | None = None
    tools: dict[str, str] = field(default_factory=dict)

    def tool(self, name: str) -> str:
        return self.tools.get(name) or name

    def job_root_path(self) -> Path:
        return Path(os.path.expanduser(self.job_root)) if self.job_root else paths.default_job_root()


_KEYS = {f.name for f in fields(Config)}


def user_config_path() -> Path:
    env = os.environ.get("KINDSLURM_CONFIG")
    return Path(env) if env else paths.config_dir() / "config.yaml"


def site_config_path() -> Path:
    env = os.environ.get("KINDSLURM_SITE_CONFIG")
    return Path(env) if env else SITE_CONFIG


def _read(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise SpecError(f"config file {path} does not exist: create it or unset KINDSLURM_CONFIG")
        return {}
    import yaml

    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except (OSError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0]
        raise SpecError(f"config file {path} cannot be read ({first}): fix its YAML") from None
    if not isinstance(data, dict):
        raise SpecError(f"config file {path} must be a mapping of keys to values")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} in {path}: valid keys are {', '.join(sorted(_KEYS))}"
        )
    bad_tools = sorted(set(data.get("tools") or {}) - set(TOOLS))
    if bad_tools:
        raise SpecError(f"unknown tool {bad_tools[0]!r} in {path}: valid tools are {', '.join(TOOLS)}")
    return data


def load(overrides: dict[str, Any] | None = None) -> Config:
    cfg = Config()
    layers = [
        _read(site_config_path(), required=False),
        _read(user_config_path(), required="KINDSLURM_CONFIG" in os.environ),
        {k: v for k, v in (overrides or {}).items() if v is not None and v != () and v != []},
    ]
    for layer in layers:
        for key, value in layer.items():
            if key == "tools":
                cfg.tools = {**cfg.tools, **(value or {})}
            elif key in ("sbatch_args", "extra_mounts", "load_images") and layer is layers[-1]:
                setattr(cfg, key, [*getattr(cfg, key), *value])
            else:
                setattr(cfg, key, value)
    return cfg
