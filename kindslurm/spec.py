"""The job spec: everything the node side needs, validated before submission.

Built from the config and the command line on the submit host, written to the
job directory as JSON, read back by `kindslurm node-run` on the compute node.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kindslurm import naming, timefmt
from kindslurm.config import Config
from kindslurm.errors import SpecError

MODES = ("sbatch", "srun", "local", "inline")


@dataclass
class JobSpec:
    run_id: str
    mode: str
    prefix: str
    user: str
    submit_dir: str
    job_dir: str
    script: str | None = None
    script_args: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    load_images: list[str] = field(default_factory=list)
    workers: int = 0
    node_image: str | None = None
    node_image_archive: str | None = None
    extra_mounts: list[str] = field(default_factory=list)
    kind_config: str | None = None
    timeout_seconds: float | None = None
    keep_on_failure: bool = False
    time_seconds: int = 3600
    warning_seconds: int = 60
    partition: str | None = None
    time: str = "01:00:00"
    cpus: int | None = None
    mem: str | None = None
    gpus: str | None = None
    account: str | None = None
    qos: str | None = None
    sbatch_args: list[str] = field(default_factory=list)
    tools: dict[str, str] = field(default_factory=dict)

    def tool(self, name: str) -> str:
        return self.tools.get(name) or name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "JobSpec":
        data: dict[str, Any] = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "JobSpec":
        try:
            return cls.from_json(Path(path).read_text())
        except (OSError, ValueError, TypeError) as e:
            raise SpecError(f"cannot read job spec {path}: {e}") from None


def _readable_file(path: str, what: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise SpecError(f"{what} {path} does not exist: {hint}")
    if not p.is_file():
        raise SpecError(f"{what} {path} is not a regular file: {hint}")
    if not os.access(p, os.R_OK):
        raise SpecError(f"{what} {path} is not readable: chmod u+r {path}")
    return p.resolve()


def check_manifest(path: Path) -> int:
    """Parse every document now, so a typo fails here and not on the node."""
    import yaml

    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        docs = [d for d in yaml.load_all(path.read_text(), Loader=loader) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"manifest {path}{where} is not valid YAML ({problem}): fix the file") from None
    if not docs:
        raise SpecError(f"manifest {path} holds no Kubernetes objects: add one or drop --manifest")
    for i, doc in enumerate(docs, 1):
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise SpecError(f"manifest {path} document {i} lacks apiVersion or kind: every object needs both")
        meta = doc.get("metadata") or {}
        if doc["kind"].endswith("List"):
            continue
        if not (meta.get("name") or meta.get("generateName")):
            raise SpecError(f"manifest {path} document {i} ({doc['kind']}) has no metadata.name: add one")
    return len(docs)


def _check_mount(mount: str) -> str:
    parts = mount.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise SpecError(f"bad mount {mount!r}: use HOST_PATH:CONTAINER_PATH[:ro]")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise SpecError(f"bad mount option {parts[2]!r} in {mount!r}: use ro or rw")
    host = Path(parts[0]).expanduser()
    if not host.exists():
        raise SpecError(f"mount source {parts[0]} does not exist: create it or fix --mount")
    return ":".join([str(host.resolve()), *parts[1:]])


def _check_kind_config(path: str) -> str:
    import yaml

    p = _readable_file(path, "kind config", "pass an existing file to --kind-config")
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError:
        raise SpecError(f"kind config {path} is not valid YAML: fix the file") from None
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise SpecError(f"kind config {path} is not a kind Cluster config: it needs 'kind: Cluster'")
    return str(p)


def build(
    cfg: Config,
    *,
    mode: str,
    script: str | None,
    script_args: list[str],
    manifests: list[str],
    name: str | None,
    run_id: str | None = None,
    job_dir: Path | None = None,
) -> JobSpec:
    """Validate every input and freeze it into a spec; raises SpecError on the first problem."""
    if mode not in MODES:
        raise SpecError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if not script and not manifests:
        raise SpecError("nothing to run: give a workload script, or --manifest FILE, or both")
    script_path = _readable_file(script, "workload script", "check the path") if script else None
    manifest_paths = [
        _readable_file(m, "manifest", "check the --manifest path") for m in manifests
    ]
    for m in manifest_paths:
        check_manifest(m)
    images = [str(_readable_file(i, "image archive", "pass a `podman save` tar to --load-image")) for i in cfg.load_images]
    time_seconds = timefmt.slurm_time_seconds(str(cfg.time))
    timeout = timefmt.duration_seconds(cfg.timeout, "timeout") if cfg.timeout else None
    if cfg.mem:
        timefmt.parse_mem_mb(str(cfg.mem))
    if cfg.cpus is not None and int(cfg.cpus) < 1:
        raise SpecError(f"bad --cpus {cfg.cpus}: ask for at least 1 CPU")
    if int(cfg.workers) < 0 or int(cfg.workers) > 16:
        raise SpecError(f"bad --workers {cfg.workers}: use 0 to 16 worker nodes")
    if int(cfg.warning_seconds) < 10:
        raise SpecError(f"warning_seconds {cfg.warning_seconds} is too short for teardown: use at least 10")
    user = naming.current_user()
    prefix = naming.validate_prefix(name) if name else naming.default_prefix(user)
    run_id = run_id or naming.new_run_id()
    job_dir = job_dir or cfg.job_root_path() / run_id
    return JobSpec(
        run_id=run_id,
        mode=mode,
        prefix=prefix,
        user=user,
        submit_dir=os.getcwd(),
        job_dir=str(job_dir),
        script=str(script_path) if script_path else None,
        script_args=list(script_args),
        manifests=[str(m) for m in manifest_paths],
        load_images=images,
        workers=int(cfg.workers),
        node_image=cfg.node_image,
        node_image_archive=os.path.expanduser(cfg.node_image_archive) if cfg.node_image_archive else None,
        extra_mounts=[_check_mount(m) for m in cfg.extra_mounts],
        kind_config=_check_kind_config(cfg.kind_config) if cfg.kind_config else None,
        timeout_seconds=timeout,
        keep_on_failure=bool(cfg.keep_on_failure),
        time_seconds=time_seconds,
        warning_seconds=int(cfg.warning_seconds),
        partition=cfg.partition,
        time=str(cfg.time),
        cpus=int(cfg.cpus) if cfg.cpus is not None else None,
        mem=str(cfg.mem) if cfg.mem else None,
        gpus=str(cfg.gpus) if cfg.gpus else None,
        account=cfg.account,
        qos=cfg.qos,
        sbatch_args=list(cfg.sbatch_args),
        tools=dict(cfg.tools),
    )
