"""The job spec: everything the node side needs, validated before submission.

Built from the config and the command line on the submit host, written to the
job directory as JSON, read back by `kindslurm node-run` on the compute node.
The script and manifests are copied into the job directory at submit time
(`stage_inputs`), so a file edited while the job is pending cannot bypass the
checks made here: the node runs exactly what was validated.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from kindslurm import naming, timefmt
from kindslurm.config import Config, sbatch_args_problem
from kindslurm.errors import SpecError
from kindslurm.manifest_check import check_manifest, check_manifest_text, decode_utf8, parse_yaml, read_text

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
    script_origin: str | None = None  # where the staged copy in `script` came from: the workload's $0
    in_allocation: bool = False  # submitted from inside an allocation: cancel then stops only the run's step
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
    hold: bool = False  # an interactive cluster (`up`): held once Ready until `down`, scancel or the time limit
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
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    k8s_port: int | None = None  # None: the node leases a free one
    k8s_port_address: str = "0.0.0.0"

    def tool(self, name: str) -> str:
        return self.tools.get(name) or name

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "JobSpec":
        """Typed by the dataclass's own annotations; keys this version does not know are ignored."""
        import msgspec

        try:
            return msgspec.json.decode(text, type=cls)
        except msgspec.DecodeError as e:
            raise SpecError(f"job spec is damaged ({e}): submit the run again") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "JobSpec":
        try:
            return cls.from_json(Path(path).read_bytes())
        except OSError as e:
            raise SpecError(f"cannot read job spec {path}: {e.strerror or e}") from None
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None


def _readable_file(path: str, what: str, hint: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise SpecError(f"{what} {path} does not exist: {hint}")
    if not p.is_file():
        raise SpecError(f"{what} {path} is not a regular file: {hint}")
    if not os.access(p, os.R_OK):
        raise SpecError(f"{what} {path} is not readable: chmod u+r {path}")
    return p.resolve()


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


def _check_kind_config_text(text: str, path: str | Path) -> None:
    doc = parse_yaml(text, Path(path), "kind config", single=True)[0]
    if not isinstance(doc, dict) or doc.get("kind") != "Cluster":
        raise SpecError(f"kind config {path} is not a kind Cluster config: it needs 'kind: Cluster'")


def _check_kind_config(path: str) -> str:
    p = _readable_file(path, "kind config", "pass an existing file to --kind-config")
    _check_kind_config_text(read_text(p, "kind config"), path)
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
    hold: bool = False,
) -> JobSpec:
    """Validate every input and freeze it into a spec; raises SpecError on the first problem."""
    if mode not in MODES:
        raise SpecError(f"unknown mode {mode!r}: use one of {', '.join(MODES)}")
    if hold and (script or manifests):
        raise SpecError("an interactive cluster (`up`) runs no workload: drop the script and --manifest, "
                        "then use kubectl with `kindslurm kubeconfig NAME`")
    if not script and not manifests and not hold:
        raise SpecError("nothing to run: give a workload script, or --manifest FILE, or both")
    script_path = _readable_file(script, "workload script", "check the path") if script else None
    manifest_paths = [
        _readable_file(m, "manifest", "check the --manifest path") for m in manifests
    ]
    for m in manifest_paths:
        check_manifest(m)
    images = [str(_readable_file(i, "image archive", "pass a `podman save` tar to --load-image")) for i in cfg.load_images]
    time_seconds = timefmt.slurm_time_seconds(str(cfg.time))
    timeout = timefmt.duration_seconds(cfg.timeout, "timeout") if cfg.timeout is not None else None
    if timeout is not None and timeout <= 0:
        raise SpecError(f"bad timeout {cfg.timeout!r}: give a positive duration such as 30m, or leave it out for none")
    problem = sbatch_args_problem(list(cfg.sbatch_args))
    if problem:
        raise SpecError(f"sbatch option {problem}")
    if cfg.mem:
        timefmt.parse_mem_mb(str(cfg.mem))
    if cfg.cpus is not None and int(cfg.cpus) < 1:
        raise SpecError(f"bad --cpus {cfg.cpus}: ask for at least 1 CPU")
    if int(cfg.workers) < 0 or int(cfg.workers) > 16:
        raise SpecError(f"bad --workers {cfg.workers}: use 0 to 16 worker nodes")
    if int(cfg.warning_seconds) < 10:
        raise SpecError(f"warning_seconds {cfg.warning_seconds} is too short for teardown: use at least 10")
    if run_id is not None and not naming.RUN_ID.match(run_id):
        raise SpecError(f"run id {run_id!r} is not one kindslurm makes (YYYYMMDD-HHMMSS-xxxxxx, or pod-UID for a "
                        f"bridged pod): leave it out")
    from kindslurm import k8sport, mirrors

    registry_mirrors = mirrors.check(dict(cfg.registry_mirrors))
    k8s_port = k8sport.parse(cfg.k8s_port, "k8s_port") if cfg.k8s_port is not None else None
    k8s_port_address = k8sport.check_address(cfg.k8s_port_address)
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
        hold=hold,
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
        registry_mirrors=registry_mirrors,
        k8s_port=k8s_port,
        k8s_port_address=k8s_port_address,
    )


INPUTS_DIR = "inputs"


def _write_private(path: Path, data: bytes, mode: int) -> None:
    """A new file with exactly `mode` whatever the umask; never follows or replaces what is there."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode), "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)


def _read_input(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise SpecError(f"cannot copy {what} {path} into the job directory ({e.strerror or e}): "
                        f"check it is still there and readable") from None


def stage_inputs(spec: JobSpec) -> JobSpec:
    """Copy the script, manifests and kind config into `<job_dir>/inputs/`; return a spec that uses the copies.

    The node reads its inputs when the job starts, possibly hours after
    submission; a file edited in between would skip every check made at
    submit time. Each manifest and the kind config are checked again here, on
    the very bytes that are copied, so what runs is exactly what was checked.
    Symlinks are followed (the content is copied). The job directory must exist.
    """
    inputs = Path(spec.job_dir) / INPUTS_DIR
    try:
        inputs.mkdir(mode=0o700)
        os.chmod(inputs, 0o700)
        script: str | None = None
        manifests: list[str] | None = None
        kind_config: str | None = None
        if spec.script:
            data = _read_input(spec.script, "workload script")
            name = os.path.basename(spec.script)
            target = inputs / (f"script-{name}" if name in ("manifests", "kind-config") else name)
            _write_private(target, data, 0o700 if os.access(spec.script, os.X_OK) else 0o600)
            script = str(target)
        if spec.manifests:
            (inputs / "manifests").mkdir(mode=0o700)
            manifests = []
            for i, source in enumerate(spec.manifests, 1):
                data = _read_input(source, "manifest")
                check_manifest_text(decode_utf8(data, source, "manifest"), Path(source))
                target = inputs / "manifests" / f"{i:02d}-{os.path.basename(source)}"
                _write_private(target, data, 0o600)
                manifests.append(str(target))
        if spec.kind_config:
            data = _read_input(spec.kind_config, "kind config")
            _check_kind_config_text(decode_utf8(data, spec.kind_config, "kind config"), spec.kind_config)
            (inputs / "kind-config").mkdir(mode=0o700)
            target = inputs / "kind-config" / os.path.basename(spec.kind_config)
            _write_private(target, data, 0o600)
            kind_config = str(target)
    except FileExistsError:
        raise SpecError(f"inputs of run {spec.run_id} are already staged in {inputs}: stage a spec only once") from None
    except OSError as e:
        raise SpecError(f"cannot write the job's inputs to {inputs} ({e.strerror or e}): check the job directory's disk") from None
    return replace(
        spec,
        script=script or spec.script,
        script_origin=(spec.script_origin or spec.script) if spec.script else None,
        manifests=manifests if manifests is not None else list(spec.manifests),
        kind_config=kind_config or spec.kind_config,
    )
