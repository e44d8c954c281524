"""Settings from defaults, the site file, the user's file and the CLI, in that order.

The site file (/etc/kindslurm/config.yaml, or KINDSLURM_SITE_CONFIG) lets an
admin point every user at a node image archive and at site binaries; the
user's file ($XDG_CONFIG_HOME/kindslurm/config.yaml, or KINDSLURM_CONFIG)
holds personal defaults. Unknown keys are errors that list the valid ones.

`Config`'s annotations are the one schema for files and options alike: each
layer is type-checked against them with msgspec before it is merged, so a
wrong type is a one-line error naming the file, the key and the fix instead
of a traceback (or, worse, a silently different job). msgspec is imported
only when a layer is checked, which keeps `kindslurm --help` from paying for it.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from kindslurm import paths
from kindslurm.errors import SpecError

TOOLS = ("kind", "podman", "kubectl", "sbatch", "srun", "squeue", "sacct", "scancel", "sinfo", "scontrol")
SITE_CONFIG = Path("/etc/kindslurm/config.yaml")


@dataclass
class Remote:
    """Remote mode: the login node every command runs against over SSH (README: From your laptop)."""

    host: str | None = None  # [USER@]HOST[:PORT]; --host overrides it
    user: str | None = None
    port: int | None = None
    key: str | None = None  # a private key file; the agent and ~/.ssh/config's are tried too
    jump: str | None = None  # ProxyJump: [USER@]HOST[:PORT][,...]
    known_hosts: str | None = None  # default ~/.ssh/known_hosts
    command: str | None = None  # kindslurm on the login node (default: `kindslurm` on its PATH)


REMOTE_KEYS = tuple(f.name for f in fields(Remote))


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
    registry_mirrors: dict[str, str] = field(default_factory=dict)  # registry host -> mirror URL (mirrors.py)
    k8s_port: int | None = None  # K8S_PORT (k8sport.py); else K8S_PORT from the environment, else a free one
    k8s_port_address: str = "0.0.0.0"
    # workload
    timeout: str | None = None
    keep_on_failure: bool = False
    # where things go and what runs
    job_root: str | None = None
    template: str | None = None
    kindslurm_command: str | None = None
    tools: dict[str, str] = field(default_factory=dict)
    remote: Remote = field(default_factory=Remote)
    # `kindslurm bridge`: flavors and the admin's rules, checked by kindslurm.bridge.config
    bridge: dict[str, Any] = field(default_factory=dict)

    def tool(self, name: str) -> str:
        return self.tools.get(name) or name

    def job_root_path(self) -> Path:
        return Path(os.path.expanduser(self.job_root)) if self.job_root else paths.default_job_root()


_KEYS = {f.name for f in fields(Config)}
_SHAPE = {f.name: str(f.type).split("[")[0].split(" ")[0] for f in fields(Config)}  # str, int, bool, list, dict
# A YAML number is taken as its text where Slurm reads numbers (time 30 is 30 minutes, as for sbatch).
_NUMBER_AS_TEXT = {"time", "mem", "gpus", "account", "qos", "partition", "timeout"}
_EXAMPLES = {
    "partition": "gpu", "time": '"01:30:00"', "cpus": "8", "mem": "16G", "gpus": '"1"', "account": "myproject",
    "qos": "normal", "sbatch_args": '["--exclusive"]', "warning_seconds": "60", "workers": "1",
    "node_image": "localhost/kindslurm/node:v1.34.4", "node_image_archive": "/path/to/node.tar",
    "extra_mounts": '["/scratch/me:/scratch"]', "kind_config": "~/kind-extra.yaml", "load_images": '["img.tar"]',
    "timeout": "30m", "keep_on_failure": "true",
    "registry_mirrors": '{docker.io: "http://login1:5000"}', "k8s_port": "30080", "k8s_port_address": "0.0.0.0", "job_root": "~/kindslurm-jobs", "template": "~/batch.sh.j2",
    "kindslurm_command": '"python3 -m kindslurm"', "tools": "{kind: /opt/kind/bin/kind}",
    "remote": "{host: login.hpc.example.org, user: me}",
    "bridge": "{default_flavor: small, flavors: {small: {cpus: 1, mem: 2G}}}",
}
_OPTION_NAMES = {"sbatch_args": "--sbatch-arg", "extra_mounts": "--mount", "load_images": "--load-image"}


def user_config_path() -> Path:
    env = os.environ.get("KINDSLURM_CONFIG")
    return Path(env) if env else paths.config_dir() / "config.yaml"


def site_config_path() -> Path:
    env = os.environ.get("KINDSLURM_SITE_CONFIG")
    return Path(env) if env else SITE_CONFIG


@functools.cache
def _loader() -> type:
    """A safe loader that resolves only null, booleans and plain decimal integers.

    YAML 1.1 reads an unquoted `time: 1:30:00` as the sexagesimal integer 5400,
    `account: 012345` as octal and `2024-01-01` as a date; none of those is what
    a user of Slurm means. Everything else stays the text that was written.
    """
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    keep = {"tag:yaml.org,2002:null", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:merge"}
    resolvers = {
        ch: [(tag, rx) for tag, rx in found if tag in keep]
        for ch, found in base.yaml_implicit_resolvers.items()
    }
    loader: Any = type("ConfigLoader", (base,), {"yaml_implicit_resolvers": resolvers})
    loader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
    return loader


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _json(text: str) -> str:
    import json

    return json.dumps(text)


def _type_problem(key: str, value: Any, in_file: bool) -> str:
    """What is wrong with one key's value and how to write it, for any value the schema refused."""
    shape = _SHAPE[key]

    def subject(suffix: str = "") -> str:
        return f"`{key}{suffix}`" if in_file else f"{_OPTION_NAMES.get(key, '--' + key.replace('_', '-'))}{suffix}"

    write = f"write e.g. {key}: {_EXAMPLES.get(key, '...')}" if in_file else "check the command line"
    if value is None:
        return f"{subject()} is empty: give it a value or delete the line"
    if shape == "list":
        if isinstance(value, str):
            return f"{subject()} must be a list (got {_show(value)}): use a list: {key}: [{_json(value)}]"
        if not isinstance(value, list):
            return f"{subject()} must be a list of strings (got {_show(value)}): {write}"
        for i, item in enumerate(value):
            if not isinstance(item, str):
                return f"{subject(f'[{i}]')} must be a string (got {_show(item)}): quote it"
    elif key == "bridge":
        return f"{subject()} must be a mapping (got {_show(value)}): {write}"
    elif shape == "dict" and key == "registry_mirrors":
        return f"{subject()} must be a mapping of registry host to mirror URL (got {_show(value)}): {write}"
    elif shape == "dict":
        if not isinstance(value, dict):
            return f"{subject()} must be a mapping of tool name to path (got {_show(value)}): {write}"
        for name, item in value.items():
            if not isinstance(name, str) or name not in TOOLS:
                return f"unknown tool {name!r} in {subject()}: valid tools are {', '.join(TOOLS)}"
            if not isinstance(item, str):
                return f"{subject(f'.{name}')} must be a path (got {_show(item)}): write e.g. {key}: {{{name}: /usr/bin/{name}}}"
    elif shape == "Remote":
        return f"`remote` must be a mapping of {', '.join(REMOTE_KEYS)} (got {_show(value)}): {write}"
    elif shape == "bool":
        return f"{subject()} must be true or false (got {_show(value)}): write {key}: true or {key}: false, without quotes"
    elif shape == "int":
        if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            return f"{subject()} must be a whole number (got {_show(value)}): write {key}: {value.strip()}, without quotes"
        return f"{subject()} must be a whole number (got {_show(value)}): {write}"
    else:
        return f"{subject()} must be a string (got {_show(value)}): {write}"
    return f"{subject()} has the wrong type (got {_show(value)}): {write}"


def _typed(data: dict[str, Any], where: str, in_file: bool) -> Config:
    """One layer converted to the schema; raises SpecError naming `where` and the key."""
    import msgspec

    data = {k: (str(v) if k in _NUMBER_AS_TEXT and type(v) is int else v) for k, v in data.items()}
    for key in ("sbatch_args", "extra_mounts", "load_images", "tools", "registry_mirrors", "bridge"):
        if key in data and data[key] is None:
            data[key] = {} if key in ("tools", "registry_mirrors", "bridge") else []
    try:
        return msgspec.convert(data, type=Config)
    except msgspec.ValidationError as e:
        m = re.search(r"`\$\.(\w+)", str(e))
        if not m or m.group(1) not in data:
            raise SpecError(f"{where}: {e}") from None
        raise SpecError(f"{where}: {_type_problem(m.group(1), data[m.group(1)], in_file)}") from None


def _read(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise SpecError(f"config file {path} does not exist: create it or unset KINDSLURM_CONFIG")
        return {}
    import yaml

    try:
        data = yaml.load(path.read_text(), Loader=_loader())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SpecError(f"config file {path} cannot be read ({first}): fix its YAML") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"config file {path} must be a mapping of keys to values, e.g. `time: \"01:00:00\"`")
    unknown = sorted((k for k in data if k not in _KEYS), key=str)
    if unknown:
        raise SpecError(
            f"unknown key {unknown[0]!r} in {path}: valid keys are {', '.join(sorted(_KEYS))}"
        )
    where = f"config file {path}"
    remote = data.get("remote")
    if isinstance(remote, dict) and (odd := sorted((k for k in remote if k not in REMOTE_KEYS), key=str)):
        raise SpecError(f"unknown key {odd[0]!r} under remote in {path}: valid keys are {', '.join(REMOTE_KEYS)}")
    typed = _typed(data, where, in_file=True)
    bad_tools = sorted(t for t in typed.tools if t not in TOOLS)
    if bad_tools:
        raise SpecError(f"unknown tool {bad_tools[0]!r} in {path}: valid tools are {', '.join(TOOLS)}")
    problem = sbatch_args_problem(typed.sbatch_args)
    if problem:
        raise SpecError(f"{where}: sbatch_args {problem}")
    _check_ksi(typed, data, where)
    return {key: getattr(typed, key) for key in data}


def _check_ksi(typed: Config, data: dict[str, Any], where: str) -> None:
    from kindslurm import k8sport, mirrors

    if "registry_mirrors" in data:
        mirrors.check(typed.registry_mirrors, f"{where}: registry_mirrors")
    if typed.k8s_port is not None and "k8s_port" in data:
        k8sport.parse(typed.k8s_port, f"{where}: k8s_port")
    if "k8s_port_address" in data:
        k8sport.check_address(typed.k8s_port_address, f"{where}: k8s_port_address")


def load(overrides: dict[str, Any] | None = None, *, files: bool = True) -> Config:
    """The merged config; without `files`, the defaults and `overrides` only
    (remote mode checks a command line that the login node's files complete)."""
    cfg = Config()
    cli = {k: v for k, v in (overrides or {}).items() if v is not None and v != () and v != []}
    for key in ("sbatch_args", "extra_mounts", "load_images"):
        if isinstance(cli.get(key), tuple):
            cli[key] = list(cli[key])
    if "k8s_port" in cli:
        from kindslurm import k8sport

        cli["k8s_port"] = k8sport.parse(cli["k8s_port"], "--k8s-port")
    typed = _typed({k: v for k, v in cli.items() if k in _KEYS}, "command line", in_file=False)
    problem = sbatch_args_problem(typed.sbatch_args)
    if problem:
        raise SpecError(f"--sbatch-arg {problem}")
    layers = [
        _read(site_config_path(), required=False) if files else {},
        _read(user_config_path(), required="KINDSLURM_CONFIG" in os.environ) if files else {},
        {key: getattr(typed, key) if key in _KEYS else value for key, value in cli.items()},
    ]
    for layer in layers:
        for key, value in layer.items():
            if key in ("tools", "registry_mirrors", "bridge"):  # the site's entries stay unless the user's names them
                setattr(cfg, key, {**getattr(cfg, key), **value})
            elif key == "remote":
                cfg.remote = Remote(**{**vars(cfg.remote), **{k: v for k, v in vars(value).items() if v is not None}})
            elif key in ("sbatch_args", "extra_mounts", "load_images") and layer is layers[-1]:
                setattr(cfg, key, [*getattr(cfg, key), *value])
            else:
                setattr(cfg, key, value)
    return cfg


# sbatch/srun options kindslurm sets itself or cannot honour, with the fix.
_ARRAY = (
    "asks for a job array, which kindslurm does not support (every task would share one run id, "
    "job directory and outputs): submit one `kindslurm run` per task instead, e.g. in a shell loop"
)
_RESERVED: dict[str, tuple[str, str]] = {
    "array": ("a", _ARRAY),
    "output": ("o", "would move the job output that `kindslurm logs --job-output` and `--wait` read: drop it"),
    "error": ("e", "would split kindslurm's own messages out of the job output: drop it"),
    "chdir": ("D", "would move the batch shell; the workload runs where you submit from: cd there before `kindslurm run`"),
    "signal": ("", "would replace the warning kindslurm tears the cluster down on: set warning_seconds in the config instead"),
    "wrap": ("", "would replace kindslurm's batch script: put the command in your workload script"),
    "parsable": ("", "is passed to sbatch by kindslurm already: use `kindslurm run --parsable` to print only the job id"),
    "comment": ("", "would be overridden by the comment kindslurm tags its jobs with: drop it"),
    "time": ("t", "bypasses the limit kindslurm plans teardown by: use --time (time: in the config)"),
    "partition": ("p", "bypasses kindslurm's own setting: use --partition (partition: in the config)"),
    "cpus-per-task": ("c", "bypasses the CPUs the cluster's nodes are sized to: use --cpus (cpus: in the config)"),
    "mem": ("", "bypasses the memory the cluster's nodes are sized to: use --mem (mem: in the config)"),
    "gpus": ("G", "bypasses kindslurm's own setting: use --gpus (gpus: in the config)"),
    "account": ("A", "bypasses kindslurm's own setting: use --account (account: in the config)"),
    "qos": ("q", "bypasses kindslurm's own setting: use --qos (qos: in the config)"),
    "nodes": ("N", "asks for more than one node, but a kind cluster lives on one: drop it (kindslurm asks for --nodes=1)"),
    "ntasks": ("n", "would start the node side more than once under srun: drop it and ask for CPUs with --cpus"),
}
_ONE_IS_FINE = {"nodes", "ntasks"}
_SHORT = {short: name for name, (short, _) in _RESERVED.items() if short}
_SHORT_FLAGS = set("HhOQsVvW")  # sbatch short options that take no value


def sbatch_args_problem(args: list[str]) -> str | None:
    """Why one of the extra sbatch/srun options cannot be used, or None.

    Each entry becomes one `#SBATCH` line and one srun argument, so it must be
    one whole option (`--name=value`). sbatch accepts unambiguous prefixes of
    long options (`--arr=1-3`), so a prefix of a reserved name counts as it.
    """
    for arg in args:
        if not arg.startswith("-") or not arg.strip("-= \t") or arg.startswith(("--=", "-- ")):
            return (f"entry {arg!r} is not an option: give each option with its value as one entry, "
                    f"e.g. --constraint=gpu")
        if arg.startswith("--"):
            name, sep, value = arg[2:].partition("=")
            name = name.split()[0] if name.split() else name
            hit = name if name in _RESERVED else next((r for r in _RESERVED if r.startswith(name)), None)
            if hit and not (hit in _ONE_IS_FINE and sep and value.strip() == "1"):
                return f"{arg!r} {_RESERVED[hit][1]}"
            if re.search(r"\s", arg.partition("=")[0]):
                return f"entry {arg!r} holds a space: write the option and its value as one word, e.g. --constraint=gpu"
            continue
        for i, letter in enumerate(arg[1:], 1):
            if letter in _SHORT:
                hit = _SHORT[letter]
                if not (hit in _ONE_IS_FINE and arg[i + 1:].strip() == "1"):
                    return f"{arg!r} {_RESERVED[hit][1]}"
                break
            if letter not in _SHORT_FLAGS:
                break
        if re.search(r"\s", arg):
            return f"entry {arg!r} holds a space: write the option and its value as one word, e.g. --constraint=gpu"
    return None
