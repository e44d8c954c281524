"""A pod's run, through kindslurm.api: submitted like any `kindslurm run`, found
again by the comment its job carries, and read back from its job directory.

The run's workload is `kindslurm node-pod` (node/podagent.py) and its one
manifest is the pod with what it reads (manifest.py). Its kind cluster binds
the API server to the node's address instead of loopback, so the bridge on
another host can reach it for logs, exec and port-forward (see inner.py).
"""

from __future__ import annotations

import shlex
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from kindslurm import api, config, paths, records
from kindslurm import spec as specmod
from kindslurm.bridge.manifest import Inner
from kindslurm.bridge.mapping import RunRequest
from kindslurm.errors import SchedulerError
from kindslurm.paths import JobPaths
from kindslurm.podfiles import PodFiles, read_json, write_json
from kindslurm.scheduler.base import Scheduler
from kindslurm.scheduler.render import kindslurm_command

# The inner API server listens on every address of the node (still TLS with the run's own CA and client
# certificates). kind then writes https://127.0.0.1:PORT into the kubeconfig but names only localhost and
# 0.0.0.0 in the certificate: 127.0.0.1 is added so the node side's own clients verify it.
KIND_CONFIG = {"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "networking": {"apiServerAddress": "0.0.0.0"},
               "kubeadmConfigPatches": ["kind: ClusterConfiguration\napiServer:\n  certSANs: [localhost, 0.0.0.0, 127.0.0.1]\n"]}
IN_FLIGHT = 120.0  # seconds a submission without a job id may still be on its way through sbatch


def transient(e: SchedulerError) -> bool:
    """Slurm unreachable (worth trying again) rather than refusing this job (not worth it)."""
    text = str(e).lower()
    return e.retryable or any(w in text for w in ("contact", "timed out", "temporarily", "socket", "try again",
                                                  "not responding", "did not answer"))


@dataclass
class RunFiles:
    """What a run's job directory says: the record's phase and node, and the pod agent's files."""

    phase: str | None = None
    node: str | None = None
    inner: dict[str, Any] | None = None
    address: str | None = None
    summary: dict[str, Any] | None = None


class Runs:
    def __init__(self, scheduler: Scheduler, user: str) -> None:
        self.scheduler = scheduler
        self.user = user
        self._status_seen: dict[str, tuple[float, Any]] = {}

    def submit(self, run_id: str, req: RunRequest, inner: Inner, namespace: str, name: str,
               meta: dict[str, Any]) -> api.Submitted:
        """sbatch the pod's run; SpecError for bad options (nothing submitted), SchedulerError from Slurm."""
        staging = paths.ensure_private_dir(paths.state_dir() / "bridge" / "staging" / run_id)
        try:
            manifest = staging / "pod.yaml"
            paths.write_private(manifest, yaml.safe_dump_all(inner.docs, sort_keys=False))
            kind_config = staging / "kind-config.yaml"
            paths.write_private(kind_config, yaml.safe_dump(KIND_CONFIG, sort_keys=False))
            cfg = config.load({**req.options, "kind_config": str(kind_config), "extra_mounts": list(inner.mounts)})
            script = staging / "pod.sh"
            paths.write_private(script, "#!/bin/sh\n# the bridged pod's workload: it ends with the pod\n"
                                        f"exec {shlex.join(kindslurm_command(cfg.kindslurm_command))} node-pod \"$@\"\n")
            spec = specmod.build(cfg, mode="sbatch", script=str(script), script_args=[namespace, name],
                                 manifests=[str(manifest)], name=req.prefix, run_id=run_id)
            spec = replace(spec, submit_dir=spec.job_dir)  # the job starts in its own directory, mounted at /app
            submitted = api.submit_plan(api.Plan("sbatch", spec, cfg, self.scheduler))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        write_json(PodFiles.of(submitted.job_dir).root / "meta.json", meta)
        return submitted

    def find(self, run_id: str) -> str | None:
        """The job of a submission whose answer was lost (a bridge killed right after sbatch)."""
        return self.scheduler.find_by_comment(self.user, api.submit_comment(run_id))

    def in_flight(self, run_id: str) -> bool:
        """A submission started moments ago may still reach Slurm: wait for it rather than submit twice."""
        rec = records.load(run_id)
        return rec is not None and time.time() - rec.created < IN_FLIGHT

    def forget(self, run_id: str) -> None:
        """Drop the traces of a submission that never reached Slurm, so it can be made again."""
        rec = records.load(run_id)
        if rec is not None:
            shutil.rmtree(rec.job_dir, ignore_errors=True)
            records.remove(run_id)

    def job_dir(self, run_id: str) -> Path | None:
        rec = records.load(run_id)
        return Path(rec.job_dir) if rec is not None else None

    def read(self, run_id: str, ended: bool) -> RunFiles:
        rec = records.load(run_id)
        if rec is None:
            return RunFiles()
        files = PodFiles.of(rec.job_dir)
        out = RunFiles(phase=rec.phase, node=rec.node)
        out.inner = self._status(run_id, files.status)
        endpoint = read_json(files.endpoint)
        if isinstance(endpoint, dict):
            out.address = endpoint.get("address")
        if ended:
            summary = read_json(JobPaths(Path(rec.job_dir)).summary)
            out.summary = summary if isinstance(summary, dict) else None
        return out

    def _status(self, run_id: str, path: Path) -> dict[str, Any] | None:
        """status.json, read again only when it changed (500 pods make 500 of these per poll)."""
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        seen = self._status_seen.get(run_id)
        if seen is not None and seen[0] == mtime:
            return seen[1]
        data = read_json(path)
        if isinstance(data, dict):
            self._status_seen[run_id] = (mtime, data)
            return data
        return seen[1] if seen else None

    def drop(self, run_id: str) -> None:
        self._status_seen.pop(run_id, None)

    def request_delete(self, run_id: str, grace: int) -> bool:
        """Ask the node side to delete the inner pod with this grace period; False if the run has no directory."""
        d = self.job_dir(run_id)
        if d is None:
            return False
        path = PodFiles.of(d).delete_request
        if read_json(path) is None:
            write_json(path, {"grace": grace, "time": time.time()})
        return True

    def orphans(self, nodes: set[str], known: set[str]) -> list[records.Record]:
        """Live runs of pods on these nodes that no pod names any more (deleted while the bridge was away)."""
        out = []
        for rec in records.all_records():
            if not rec.run_id.startswith("pod-") or not rec.live or not rec.job_id or rec.run_id[4:] in known:
                continue
            meta = read_json(PodFiles.of(rec.job_dir).root / "meta.json")
            if isinstance(meta, dict) and meta.get("node") in nodes:
                out.append(rec)
        return out
