"""`kindslurm --host LOGIN run ...` from a laptop.

The run is checked here first (script, manifests, kind config, archives,
resources: bad input never reaches the login node), its files are copied by
SFTP into its job directory on the login node (`upload/`; the workload runs
in `work/`, mounted at /app), and the login node's own kindslurm submits it
under a run id chosen here. So the login node's config (node image, job root,
site settings) applies as for anyone working there, and a submission whose
answer a dropped connection swallowed is looked up by that run id and the
job's comment tag, never sent again. `--wait` follows the job from here and
then copies its whole job directory back.
"""

from __future__ import annotations

import posixpath
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

from kindslurm import api, config
from kindslurm.transport import where
from kindslurm.errors import CommandError, ConnectionLost, KindslurmError, SchedulerError, SpecError
from kindslurm.remote import mirror
from kindslurm.scheduler.slurm import parse_parsable

# run options whose values are files of this host: uploaded, then given as the login node's paths
FLAGS = {"partition": "--partition", "time": "--time", "cpus": "--cpus", "mem": "--mem", "gpus": "--gpus",
          "account": "--account", "qos": "--qos", "workers": "--workers", "node_image": "--node-image",
          "node_image_archive": "--node-image-archive", "timeout": "--timeout", "sbatch_args": "--sbatch-arg",
          "extra_mounts": "--mount", "kind_config": "--kind-config", "load_images": "--load-image",
          "template": "--template"}
_UPLOADED = ("kind_config", "load_images", "template")
LOOKUP_SECONDS = 30.0


@dataclass
class Upload:
    """What goes to the login node: (local path, remote path, mode)."""

    root: str
    files: list[tuple[str, str, int]] = field(default_factory=list)

    def add(self, local: str, mode: int = 0o600) -> str:
        name = Path(local).name
        taken = {posixpath.basename(r) for _, r, _ in self.files}
        if name in taken:
            name = f"{len(self.files)}-{name}"
        remote = posixpath.join(self.root, "upload", name)
        self.files.append((local, remote, mode))
        return remote


def check_locally(script: str | None, script_args: Sequence[str], manifests: Sequence[str], name: str | None,
                  options: dict[str, Any]) -> Any:
    """The run's own checks on this host's files, with only the command line's
    settings (the login node's config files complete them there). Mounts and
    the node image archive name the login node's paths: checked there."""
    from kindslurm import spec as specmod

    here = {k: v for k, v in options.items() if k not in ("extra_mounts", "node_image_archive")}
    if here.get("template"):
        specmod._readable_file(here["template"], "batch template", "check the --template path")
    cfg = config.load(here, files=False)
    return specmod.build(cfg, mode="sbatch", script=script, script_args=list(script_args),
                         manifests=list(manifests), name=name)


def remote_argv(spec: Any, upload: Upload, options: dict[str, Any], name: str | None) -> list[str]:
    """The login node's `kindslurm run` for this run, from its work directory."""
    args = ["run", "--submit", "--parsable", "--run-id", spec.run_id]
    if name:
        args += ["--name", name]
    if options.get("keep_on_failure"):
        args.append("--keep-on-failure")
    for key, flag in FLAGS.items():
        value = options.get(key)
        if value is None or value == () or value == []:
            continue
        for v in value if isinstance(value, (list, tuple)) else [value]:
            args += [flag, upload.add(str(Path(v).expanduser().resolve())) if key in _UPLOADED else str(v)]
    for m in spec.manifests:
        args += ["--manifest", upload.add(m)]
    if spec.script:
        args += [upload.add(spec.script, 0o700), "--", *spec.script_args]
    work = posixpath.join(upload.root, "work")
    return ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", work, *where.remote_command(*args)]


def refused(e: CommandError) -> KindslurmError:
    """The login node's kindslurm said no: its own line and exit code."""
    lines = [line for line in e.output.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else str(e)
    return KindslurmError(last.removeprefix("kindslurm: error: "), exit_code=e.returncode)


def recover(run_id: str) -> str:
    """The job of a submission whose answer was lost: in the run's record, or
    tagged with its comment. Never submitted again."""
    source, sched, info = api.get_records(), api.get_scheduler(), api.remote_info()
    deadline = time.monotonic() + LOOKUP_SECONDS
    while True:
        rec = source.load(run_id)
        if rec is not None and rec.job_id:
            return rec.job_id
        found = sched.find_by_comment(info.user, api.submit_comment(run_id))
        if found:
            return found
        if time.monotonic() > deadline:
            raise SchedulerError(
                f"the connection dropped while {info.host} submitted run {run_id}, and no job tagged "
                f"{api.submit_comment(run_id)} is queued: nothing was sent twice; check `squeue --me` there")
        time.sleep(2)


def submit(script: str | None, script_args: Sequence[str], manifests: Sequence[str], name: str | None,
           options: dict[str, Any], *, dry_run: bool = False, out: IO[str] = sys.stdout) -> api.Submitted | None:
    spec = check_locally(script, script_args, manifests, name, options)
    transport, info = api.get_transport(), api.remote_info()
    root = posixpath.join(info.job_root, spec.run_id)
    upload = Upload(root)
    argv = remote_argv(spec, upload, options, name)
    if dry_run:
        for local, remote, _ in upload.files:
            out.write(f"upload {local} -> {info.host}:{remote}\n")
        out.write(f"on {info.host}: {shlex.join(argv)}\n")
        return None
    transport.make_dirs(posixpath.join(root, "upload"), 0o700)
    transport.make_dirs(posixpath.join(root, "work"), 0o700)
    try:
        for local, remote, mode in upload.files:
            transport.put_file(local, remote, mode)
        try:
            job_id = parse_parsable(transport.run(argv, timeout=180, retry=False).stdout)
        except CommandError as e:
            raise refused(e) from None
        except ConnectionLost:
            job_id = recover(spec.run_id)
    except BaseException:
        if api.get_records().load(spec.run_id) is None:  # the login node made no run of it: nothing to keep
            transport.run(["rm", "-rf", "--", root], check=False, retry=True)
        raise
    rec = api.get_records().load(spec.run_id)
    cluster = f"{rec.prefix if rec else spec.prefix}-{job_id}"
    return api.Submitted(job_id, spec.run_id, cluster, rec.job_dir if rec else root)


def local_copy(run_id: str) -> Path:
    """Where a remote run's job directory is copied on this host: the job root of this host's config."""
    return config.load().job_root_path() / run_id


def copy_back(run: api.Submitted | str, err: IO[str] = sys.stderr) -> Path | None:
    """Mirror a finished run's job directory from the login node; None while it still runs."""
    rec = api.find(run.run_id if isinstance(run, api.Submitted) else run)
    if rec.live:
        return None
    target = local_copy(rec.run_id)
    n = mirror.mirror(api.get_transport(), rec.job_dir, target)
    print(f"job directory copied to {target} ({n} file{'s' if n != 1 else ''} updated)", file=err, flush=True)
    return target


def run(script: str | None, script_args: Sequence[str], manifests: Sequence[str], name: str | None,
        options: dict[str, Any], *, wait: bool, parsable: bool, dry_run: bool) -> int:
    """The whole `run` in remote mode; the exit code `kindslurm run` ends with."""
    for flag in ("use_srun", "use_local", "force_submit"):
        if options.pop(flag, False):
            raise SpecError(f"--{flag.split('_')[1]} runs on the host it is given on: drop --host and run it on "
                            f"the login node, or submit from here with --wait")
    submitted = submit(script, script_args, manifests, name, options, dry_run=dry_run)
    if submitted is None:
        return 0
    host = api.remote_info().host
    if parsable:
        print(submitted.job_id, flush=True)
    else:
        print(f"Submitted job {submitted.job_id} on {host} (run {submitted.run_id}, cluster {submitted.cluster})")
        print(f"Job directory: {host}:{submitted.job_dir}" + (f" (copied to {local_copy(submitted.run_id)} at the end)"
                                                                if wait else ""), flush=True)
    if not wait:
        return 0
    code = api.wait(submitted, scheduler=api.get_scheduler())
    copy_back(submitted)
    return code
