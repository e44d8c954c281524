"""The node-side lifecycle of one run: preflight, boot, apply, run, wait,
harvest, tear down — and tear down whatever happens.

kind's node containers live outside the Slurm job's cgroup, so Slurm's kill
does not reach them: this process must remove them itself on every exit path
(success, failure, exception, SIGTERM, SIGINT, the time-limit warning).
Signals raise `Interrupt` between bytecodes; once teardown starts, further
signals are only noted, so a second scancel cannot cut teardown short.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

from kindslurm.node import allocation, harvest, preflight
from kindslurm import exitcodes, paths, proc, records
from kindslurm.errors import ClusterExistsError, CommandError, KindslurmError, PreflightError
from kindslurm.cluster.kind_podman import KindPodman
from kindslurm.paths import JobPaths
from kindslurm.spec import JobSpec
from kindslurm.node.teardown import HARVEST_RESERVE, Teardown, kill_wait

class Interrupt(BaseException):
    """A signal asked us to stop; BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        names = {signal.SIGTERM: "cancelled", signal.SIGINT: "interrupted", signal.SIGUSR1: "timeout", signal.SIGALRM: "timeout"}
        self.status = names.get(signal.Signals(signum), "cancelled")
        self.exit_code = {
            "cancelled": exitcodes.CANCELLED,
            "interrupted": exitcodes.INTERRUPTED,
            "timeout": exitcodes.TIME_LIMIT,
        }[self.status]
        super().__init__(self.status)


def _warm_import() -> None:
    try:
        import kindslurm.kube  # noqa: F401
    except Exception:
        pass  # the real import later reports it


class Lifecycle:
    def __init__(self, spec: JobSpec, provider: Any = None, out: Any = None) -> None:
        self.spec = spec
        self.paths = JobPaths(Path(spec.job_dir))
        self.provider = provider or KindPodman(spec.tool("kind"), spec.tool("podman"))
        self.out = out or sys.stdout
        self.cluster = allocation.cluster_name(spec)
        self.kubeconfig = paths.kubeconfigs_dir() / f"{self.cluster}.yaml"
        self.marker = paths.markers_dir() / self.cluster
        self.phases: list[dict[str, Any]] = []
        self.tearing_down = False
        self.late_signals: list[int] = []
        self.claimed = False  # this run holds the cluster name's marker
        self.created = False  # from here a (partial) cluster of this run's may exist
        self.kube: Any = None
        self.outcome: dict[str, str] = {}
        self.workload: Any = None
        self.timings: dict[str, float] = {}
        self.resources: dict[str, dict] = {}
        self.teardown = Teardown()
        self.kill_wait = 30.0
        self.warnings: list[str] = []

    # -- bookkeeping --------------------------------------------------------
    def say(self, message: str) -> None:
        try:
            print(f"[kindslurm {time.strftime('%H:%M:%S')}] {message}", file=self.out, flush=True)
        except (OSError, ValueError):
            pass  # a full disk under slurm.out must not stop teardown

    def _best_effort(self, what: str, fn: Callable[[], Any]) -> Any:
        """Bookkeeping that must never stop a run or its teardown (a full home quota, say)."""
        try:
            return fn()
        except Exception as e:
            if what not in self.warnings:
                self.warnings.append(what)
                self.say(f"warning: could not {what}: {e}")
            return None

    def phase(self, name: str, message: str | None = None) -> None:
        now = time.time()
        if self.phases and "end" not in self.phases[-1]:
            self.phases[-1]["end"] = now
        self.phases.append({"name": name, "start": now})
        self._best_effort("update the run's state record", lambda: records.update(self.spec.run_id, phase=name))
        if message:
            self.say(message)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.tearing_down:
            self.late_signals.append(signum)
            return
        self.tearing_down = True  # scancel signals twice (shell and us): the second must not cut teardown
        if signum in (signal.SIGUSR1, signal.SIGALRM):
            self.teardown.start(self.spec.warning_seconds)
        else:
            self.teardown.start(self.kill_wait)
        raise Interrupt(signum)

    def _install_signals(self) -> Callable[[], None]:
        sigs = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGALRM, signal.SIGHUP)
        old = {s: signal.signal(s, self._on_signal) for s in sigs}
        if self.spec.mode == "local" and self.spec.time_seconds > self.spec.warning_seconds:
            signal.alarm(self.spec.time_seconds - self.spec.warning_seconds)

        def restore() -> None:
            signal.alarm(0)
            for s, h in old.items():
                signal.signal(s, h)

        return restore

    def _in_slurm(self) -> bool:
        return self.spec.mode != "local" and bool(os.environ.get("SLURM_JOB_ID"))

    def _register(self) -> None:
        alloc = allocation.current() if self.spec.mode != "local" else None
        fields: dict[str, Any] = dict(
            cluster=self.cluster,
            node=socket.gethostname(),
            kubeconfig=str(self.kubeconfig),
            pid=os.getpid(),
            pid_start=proc.start_time(os.getpid()),
        )
        if alloc:
            fields["job_id"] = alloc.job_id
            # a step only matters inside someone's allocation: an srun that made its own job is cancelled whole
            if self.spec.mode == "inline" or (self.spec.mode == "srun" and self.spec.in_allocation):
                fields["step_id"] = alloc.step_id
        if records.update(self.spec.run_id, **fields) is None:
            records.save(records.Record(run_id=self.spec.run_id, mode=self.spec.mode, user=self.spec.user, job_dir=self.spec.job_dir, prefix=self.spec.prefix, **fields))

    def _owner(self) -> dict[str, Any]:
        """What gc needs to know about this cluster without the state record."""
        return {
            "job_id": os.environ.get("SLURM_JOB_ID") if self._in_slurm() else None,
            "run_id": self.spec.run_id,
            "kubeconfig": str(self.kubeconfig),
            "state_dir": str(paths.state_dir()),
            "mode": self.spec.mode,
        }

    # -- the run ----------------------------------------------------------
    def run(self) -> int:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        restore = self._install_signals()
        exit_code, status, reason = exitcodes.INTERNAL, "failed", "internal error"
        started = time.time()
        try:
            self._register()
            exit_code, status, reason = self._run()
        except Interrupt as e:
            exit_code, status = e.exit_code, e.status
            reason = {"cancelled": "cancelled (SIGTERM)", "interrupted": "interrupted (SIGINT)", "timeout": "Slurm time limit reached"}[e.status]
            self.say(f"{reason}: stopping the workload and tearing down")
            if e.status == "timeout":
                self._terminate_workload()
        except KindslurmError as e:
            exit_code, status, reason = e.exit_code, "failed", str(e)
            self.say(f"error: {e}")
        except Exception as e:  # keep teardown going whatever broke
            exit_code, status, reason = exitcodes.INTERNAL, "failed", f"internal error: {e!r}"
            self.say(f"internal error: {e!r}")
        finally:
            self.tearing_down = True
            self.teardown.start_default()
            # The cluster goes first and whatever else fails; bookkeeping after it is best-effort.
            self._best_effort("stop the workload", self._stop_workload_process)
            if status in ("failed", "completed") and exit_code != 0 and self.spec.keep_on_failure and self.created:
                status = self._hold_for_debugging(status)
            self._best_effort("collect logs", self._harvest)
            leftovers = self._teardown()
            if leftovers:
                reason += f"; teardown left {', '.join(leftovers)} (run `kindslurm gc`)"
                if exit_code == exitcodes.OK:
                    exit_code = exitcodes.TEARDOWN_INCOMPLETE
            self._finish(started, exit_code, status, reason)
            restore()
        return exit_code

    def _run(self) -> tuple[int, str, str]:
        spec = self.spec
        # The Kubernetes client takes a second to import: do it while kind boots.
        threading.Thread(target=_warm_import, daemon=True).start()
        self.phase("preflight", f"run {spec.run_id} on {socket.gethostname()}: cluster {self.cluster}")
        if self._in_slurm():
            self.kill_wait = kill_wait(spec.tool("scontrol"))
        checks = preflight.run_checks(podman=spec.tool("podman"), kind=spec.tool("kind"), kubectl=spec.tool("kubectl"))
        for c in checks:
            if c.status == preflight.WARN:
                self.say(f"warning: {c.line}")
        if errs := preflight.errors(checks):
            raise PreflightError(errs[0].line)
        if spec.node_image:
            image_state = self.provider.ensure_image(spec.node_image, spec.node_image_archive)
            if image_state == "archive":
                self.say(f"loaded node image {spec.node_image} from {spec.node_image_archive}")
            elif image_state == "pull":
                self.say(f"warning: node image {spec.node_image} is not in podman: kind will pull it")

        self.phase("creating", f"creating cluster {self.cluster} ({1 + spec.workers} node{'s' if spec.workers else ''})")
        from kindslurm.cluster import kindconfig

        config = kindconfig.render(spec, kindconfig.gpu_devices(os.environ.get("SLURM_JOB_GPUS")))
        self.paths.kind_config.write_text(config)
        from kindslurm.node import capacity

        capacity.claim(self.marker)
        self.claimed = True
        capacity.reserve(self.marker, 1 + spec.workers, owner=self._owner())
        self.created = True  # from here on a partial cluster may exist
        with open(self.paths.kind_log, "a") as log:
            t = time.monotonic()
            try:
                self.provider.create(self.cluster, config, self.kubeconfig, spec.node_image, log)
            except ClusterExistsError:
                self.created = False  # someone else's: never ours to delete
                raise
            self.timings["kind_create"] = time.monotonic() - t
            capacity.write_marker(self.marker, 1 + spec.workers, booting=False)
            self._limit_resources()
            for archive in spec.load_images:
                self.say(f"loading image archive {archive}")
                self.provider.load_archive(self.cluster, archive, log)

        self.phase("starting", "waiting for the API server")
        from kindslurm.kube import Kube

        self.kube = Kube(self.kubeconfig)
        self.kube.wait_api()
        applied = []
        if spec.manifests:
            self.phase("applying", f"applying {len(spec.manifests)} manifest file(s)")
            applied = self.kube.apply(spec.manifests)
            for a in applied:
                self.say(f"applied {a.ref}")
        deadline = time.monotonic() + spec.timeout_seconds if spec.timeout_seconds else None
        exit_code = exitcodes.OK
        if spec.script:
            self.phase("running", f"running {spec.script_origin or spec.script}")
            t = time.monotonic()
            rc = self._run_workload(deadline)
            self.timings["workload"] = time.monotonic() - t
            if rc is None:
                return exitcodes.WORKLOAD_TIMEOUT, "failed", f"workload timeout ({spec.timeout_seconds:.0f}s) expired"
            exit_code = rc
            self.say(f"workload exited {rc}")
        if applied and spec.script and exit_code != 0:
            self.outcome = self.kube.outcome(applied)  # the script's failure decides; no point waiting
        elif applied:
            self.phase("waiting", "waiting for the manifests' Jobs and Pods")
            t = time.monotonic()
            self.outcome = self.kube.wait(applied, deadline)
            self.timings["manifest_wait"] = time.monotonic() - t
            if any(s == "running" for s in self.outcome.values()):
                return exitcodes.WORKLOAD_TIMEOUT, "failed", f"workload timeout ({spec.timeout_seconds:.0f}s) expired"
            failed = [ref for ref, s in self.outcome.items() if s == "failed"]
            for ref, s in self.outcome.items():
                self.say(f"{ref}: {s}")
            if not spec.script:
                exit_code = exitcodes.WORKLOAD_FAILED if failed else exitcodes.OK
        if exit_code == 0:
            return exit_code, "completed", "workload succeeded"
        return exit_code, "failed", f"workload exited {exit_code}"

    def _limit_resources(self) -> None:
        if not self._in_slurm():
            return
        cpuset = ",".join(map(str, sorted(os.sched_getaffinity(0))))
        cpus = os.environ.get("SLURM_CPUS_ON_NODE", "")
        mem = os.environ.get("SLURM_MEM_PER_NODE", "")
        try:
            self.resources = self.provider.limit_resources(
                self.cluster, cpuset, int(cpus) if cpus.isdigit() else None, int(mem) if mem.isdigit() else None
            )
        except CommandError as e:
            self.say(f"warning: could not confine nodes to the allocation: {e}")

    def _run_workload(self, deadline: float | None) -> int | None:
        from kindslurm.node.workload import Workload, script_to_run

        spec = self.spec
        env = {
            **os.environ,
            "K8S_CLUSTER_NAME": self.cluster,
            "KIND_CLUSTER_NAME": self.cluster,
            "KIND_EXPERIMENTAL_PROVIDER": "podman",
            "KUBECONFIG": str(self.kubeconfig),
            "KINDSLURM_JOB_DIR": spec.job_dir,
            "KINDSLURM_RUN_ID": spec.run_id,
        }
        self.workload = Workload(script_to_run(spec.script or "", spec.script_origin, self.say), spec.script_args, cwd=spec.submit_dir, env=env,
                                 log=self.paths.workload_log, out=self.out)
        rc = self.workload.run(deadline)
        if rc is None:
            self.say("workload timeout expired: the workload was stopped")
        return rc

    def _stop_workload_process(self) -> None:
        if self.workload is not None:
            self.workload.stop()

    def _terminate_workload(self) -> None:
        """Time limit: give pods their grace period before the cluster goes."""
        if self.kube is None:
            return
        self.tearing_down = True
        self._best_effort("stop the workload", self._stop_workload_process)
        harvest.terminate(self.kube, self.paths, max(1.0, self.teardown.for_harvest() - HARVEST_RESERVE), self.say)

    def _hold_for_debugging(self, status: str) -> str:
        self.say(
            f"keep-on-failure: cluster {self.cluster} stays up until the job ends; "
            f"use KUBECONFIG={self.kubeconfig} on {socket.gethostname()}, then scancel or Ctrl-C"
        )
        self._best_effort("update the run's state record", lambda: records.update(self.spec.run_id, phase="held"))
        self.tearing_down = False
        self.teardown = Teardown()
        try:
            while True:
                time.sleep(3600)
        except Interrupt:
            pass
        finally:
            self.tearing_down = True
        return status

    # -- harvest and teardown --------------------------------------------
    def _harvest(self) -> None:
        if self.kube is None:
            if not self.paths.events.exists():
                self.paths.events.write_text("(no cluster API: no events)\n")
            return
        self.phase("collecting")
        harvest.collect(self.kube, self.provider, self.cluster, self.paths, self.teardown.for_harvest, self.say)

    def _teardown(self) -> list[str]:
        if not self.created:
            if self.claimed:
                self._best_effort("remove the creation marker", lambda: self.marker.unlink(missing_ok=True))
            return []
        self.phase("tearing-down", f"deleting cluster {self.cluster}")
        t = time.monotonic()
        try:
            left = self.provider.delete(self.cluster, self.kubeconfig, timeout=self.teardown.for_delete())
        except Exception as e:
            left = [f"cluster {self.cluster} ({e})"]
        self.timings["kind_delete"] = time.monotonic() - t
        self._best_effort("remove the kubeconfig", lambda: self.kubeconfig.unlink(missing_ok=True))
        if not left:  # with leftovers the marker stays: gc finds them through it
            self._best_effort("remove the creation marker", lambda: self.marker.unlink(missing_ok=True))
        try:
            from kindslurm.node import capacity

            if changed := capacity.release(self.provider):
                self.say(f"restored host sysctls {', '.join(k.replace('/', '.') for k in changed)}")
        except Exception as e:
            self.say(f"warning: could not restore host sysctls: {e}")
        return list(left or [])

    def _finish(self, started: float, exit_code: int, status: str, reason: str) -> None:
        now = time.time()
        if self.phases and "end" not in self.phases[-1]:
            self.phases[-1]["end"] = now
        summary = {
            "run_id": self.spec.run_id,
            "job_id": os.environ.get("SLURM_JOB_ID") if self.spec.mode != "local" else None,
            "cluster": self.cluster,
            "node": socket.gethostname(),
            "status": status,
            "exit_code": exit_code,
            "reason": reason,
            "time_limit_reached": status == "timeout",
            "started": started,
            "finished": now,
            "seconds": round(now - started, 3),
            "phases": [
                {**p, "seconds": round(p.get("end", now) - p["start"], 3)} for p in self.phases
            ],
            "manifests": self.outcome,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "node_limits": self.resources,
            "late_signals": self.late_signals,
            "warnings": self.warnings,
        }
        self._best_effort("write summary.json", lambda: self.paths.summary.write_text(json.dumps(summary, indent=2) + "\n"))
        self._best_effort("write the exit code file", lambda: self.paths.exitcode.write_text(f"{exit_code}\n"))
        self._best_effort("update the run's state record",
                          lambda: records.update(self.spec.run_id, phase=status, exit_code=exit_code, reason=reason))
        self.say(f"done: {status}, exit code {exit_code} ({reason}) in {now - started:.1f}s")
