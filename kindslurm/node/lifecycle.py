"""The node-side lifecycle of one run: preflight, boot, apply, run, wait,
harvest, tear down — and tear down whatever happens.

kind's node containers live outside the Slurm job's cgroup, so Slurm's kill
does not reach them: this process must remove them itself on every exit path
(success, failure, exception, SIGTERM, SIGINT, the time-limit warning).
Signals raise `Interrupt` between bytecodes; once teardown starts, further
signals are only noted, so a second scancel cannot cut teardown short.

The run is the ordered steps of actions.py, undone in reverse by a Runner
(steps.py); this class is their context and decides what the end means:
exit code, status, the keep-on-failure hold, summary.json.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable

from kindslurm import exitcodes, paths, proc, records
from kindslurm.cluster.kind_podman import KindPodman
from kindslurm.cluster.provider import Provider
from kindslurm.errors import KindslurmError
from kindslurm.node import actions, allocation
from kindslurm.node.contract import KsiState
from kindslurm.node.steps import Runner
from kindslurm.node.teardown import HARVEST_RESERVE, Teardown
from kindslurm.paths import JobPaths
from kindslurm.phases import Phase
from kindslurm.spec import JobSpec

if TYPE_CHECKING:
    from kindslurm.kube import Applied, Kube
    from kindslurm.node.harvest import Harvester
    from kindslurm.node.workload import Workload

Outcome = tuple[int, Phase, str]  # exit code, status, reason

_BY_SIGNAL = {signal.SIGTERM: Phase.CANCELLED, signal.SIGINT: Phase.INTERRUPTED, signal.SIGUSR1: Phase.TIMEOUT,
              signal.SIGALRM: Phase.TIMEOUT}
_EXIT = {Phase.CANCELLED: exitcodes.CANCELLED, Phase.INTERRUPTED: exitcodes.INTERRUPTED, Phase.TIMEOUT: exitcodes.TIME_LIMIT}
_REASON = {Phase.CANCELLED: "cancelled (SIGTERM)", Phase.INTERRUPTED: "interrupted (SIGINT)",
           Phase.TIMEOUT: "Slurm time limit reached"}


class Interrupt(BaseException):
    """A signal asked us to stop; BaseException so no `except Exception` swallows it."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.status = _BY_SIGNAL.get(signal.Signals(signum), Phase.CANCELLED)
        self.exit_code = _EXIT[self.status]
        super().__init__(self.status)


class Lifecycle:
    """The steps' shared context: what they made (kube, workload, applied,
    leftovers) must outlive them, for the undos and the summary."""

    def __init__(self, spec: JobSpec, provider: Provider | None = None, out: IO[str] | None = None) -> None:
        self.spec = spec
        self.paths = JobPaths(Path(spec.job_dir))
        self.provider: Provider = provider or KindPodman(spec.tool("kind"), spec.tool("podman"))
        self.out = out or sys.stdout
        self.alloc = allocation.current() if spec.mode != "local" else None
        self.cluster = allocation.cluster_name(spec)
        self.kubeconfig = paths.kubeconfigs_dir() / f"{self.cluster}.yaml"
        self.marker = paths.markers_dir() / self.cluster
        self.tearing_down = False
        self.late_signals: list[int] = []
        self.kind_config = ""
        self.kube: Kube | None = None
        self._harvester: Harvester | None = None
        self.applied: list[Applied] = []
        self.outcome: dict[str, str] = {}
        self.workload: Workload | None = None
        self.exit_code = exitcodes.OK
        self.result: Outcome | None = None  # set by a step that decided the run early
        self.leftovers: list[str] = []  # what the cluster's deletion could not remove
        self._deadline: tuple[float | None] | None = None
        self.timings: dict[str, float] = {}
        self.resources: dict[str, dict] = {}
        self.teardown = Teardown()
        self.kill_wait = 30.0
        self.warnings: list[str] = []
        self.ksi = KsiState()  # K8S_PORT's lease, the workload's contract env, images loaded from podman
        self.runner = Runner(actions.steps(), self, warn=self._warn, on_phase=self._record_phase)

    # -- what the steps share ---------------------------------------------
    @property
    def created(self) -> bool:
        """From the create's start on, a (partial) cluster of this run's may exist."""
        return self.runner.has_started(actions.CreateCluster)

    @property
    def harvester(self) -> Harvester | None:
        """One per run: the time-limit stop and the harvest share its `unreadable`."""
        if self._harvester is None and self.kube is not None:
            from kindslurm.node.harvest import Harvester

            self._harvester = Harvester.of(self.kube)
        return self._harvester

    def deadline(self) -> float | None:
        """The workload timeout's end, counted from the first step that waits for the workload."""
        if self._deadline is None:
            t = self.spec.timeout_seconds
            self._deadline = (time.monotonic() + t if t else None,)
        return self._deadline[0]

    def say(self, message: str) -> None:
        try:
            print(f"[kindslurm {time.strftime('%H:%M:%S')}] {message}", file=self.out, flush=True)
        except (OSError, ValueError):
            pass  # a full disk under slurm.out must not stop teardown

    def _warn(self, what: str, e: Exception) -> None:
        if what not in self.warnings:
            self.warnings.append(what)
            self.say(f"warning: could not {what}: {e}")

    def best_effort(self, what: str, fn: Callable[[], Any]) -> Any:
        """Bookkeeping that must never stop a run or its teardown (a full home quota, say)."""
        try:
            return fn()
        except Exception as e:
            self._warn(what, e)
            return None

    def _record_phase(self, phase: Phase) -> None:
        self.best_effort("update the run's state record", lambda: records.update(self.spec.run_id, phase=phase))

    def owner(self) -> dict[str, Any]:
        """What gc needs to know about this cluster without the state record."""
        return {
            "job_id": self.alloc.job_id if self.alloc else None,
            "run_id": self.spec.run_id,
            "kubeconfig": str(self.kubeconfig),
            "state_dir": str(paths.state_dir()),
            "mode": self.spec.mode,
        }

    # -- signals -----------------------------------------------------------
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

    def _register(self) -> None:
        fields: dict[str, Any] = dict(
            cluster=self.cluster,
            node=socket.gethostname(),
            kubeconfig=str(self.kubeconfig),
            pid=os.getpid(),
            pid_start=proc.start_time(os.getpid()),
        )
        if self.alloc:
            fields["job_id"] = self.alloc.job_id
            # a step only matters inside someone's allocation: an srun that made its own job is cancelled whole
            if self.spec.mode == "inline" or (self.spec.mode == "srun" and self.spec.in_allocation):
                fields["step_id"] = self.alloc.step_id
        if records.update(self.spec.run_id, **fields) is None:
            records.save(records.Record(run_id=self.spec.run_id, mode=self.spec.mode, user=self.spec.user, job_dir=self.spec.job_dir, prefix=self.spec.prefix, **fields))

    # -- the run ----------------------------------------------------------
    def run(self) -> int:
        self.paths.root.mkdir(parents=True, exist_ok=True)
        restore = self._install_signals()
        exit_code, status, reason = exitcodes.INTERNAL, Phase.FAILED, "internal error"
        started = time.time()
        try:
            self._register()
            exit_code, status, reason = self._run()
        except Interrupt as e:
            exit_code, status, reason = e.exit_code, e.status, _REASON[e.status]
            self.say(f"{reason}: stopping the workload and tearing down")
            if e.status == Phase.TIMEOUT:
                self._terminate_workload()
        except KindslurmError as e:
            exit_code, status, reason = e.exit_code, Phase.FAILED, str(e)
            self.say(f"error: {e}")
        except Exception as e:  # keep teardown going whatever broke
            exit_code, status, reason = exitcodes.INTERNAL, Phase.FAILED, f"internal error: {e!r}"
            self.say(f"internal error: {e!r}")
        finally:
            self.tearing_down = True
            self.teardown.start_default()
            retain = (status in (Phase.FAILED, Phase.COMPLETED) and exit_code != 0 and self.spec.keep_on_failure
                      and self.created)
            if self.kube is None:  # before the cluster goes, where the harvest would have been
                self.best_effort("collect logs", self._no_events)
            self.runner.undo(hold=self._hold_for_debugging if retain else None)
            if self.leftovers:
                reason += f"; teardown left {', '.join(self.leftovers)} (run `kindslurm gc`)"
                if exit_code == exitcodes.OK:
                    exit_code = exitcodes.TEARDOWN_INCOMPLETE
            self._finish(started, exit_code, status, reason)
            restore()
        return exit_code

    def _run(self) -> Outcome:
        self.runner.run()
        if self.result is not None:
            return self.result
        if self.exit_code == 0:
            return self.exit_code, Phase.COMPLETED, "workload succeeded"
        return self.exit_code, Phase.FAILED, f"workload exited {self.exit_code}"

    def _terminate_workload(self) -> None:
        """Time limit: give pods their grace period before the cluster goes."""
        harvester = self.harvester
        if harvester is None:
            return
        from kindslurm.node import harvest

        self.tearing_down = True
        if self.workload is not None:
            self.best_effort("stop the workload", self.workload.stop)
        harvest.terminate(harvester, self.paths, max(1.0, self.teardown.for_harvest() - HARVEST_RESERVE), self.say)

    def _hold_for_debugging(self) -> None:
        self.say(
            f"keep-on-failure: cluster {self.cluster} stays up until the job ends; "
            f"use KUBECONFIG={self.kubeconfig} on {socket.gethostname()}, then scancel or Ctrl-C"
        )
        self.best_effort("update the run's state record", lambda: records.update(self.spec.run_id, phase=Phase.HELD))
        try:  # from before the reset: a signal right after it must still end the hold, not the teardown
            self.teardown = Teardown()
            self.tearing_down = False
            while True:
                time.sleep(3600)
        except Interrupt:
            pass
        finally:
            self.tearing_down = True

    def _no_events(self) -> None:
        if not self.paths.events.exists():
            self.paths.events.write_text("(no cluster API: no events)\n")

    def _finish(self, started: float, exit_code: int, status: Phase, reason: str) -> None:
        now = time.time()
        self.runner.close(now)
        summary = {
            "run_id": self.spec.run_id,
            "job_id": self.alloc.job_id if self.alloc else None,
            "cluster": self.cluster,
            "node": socket.gethostname(),
            "status": status,
            "exit_code": exit_code,
            "reason": reason,
            "time_limit_reached": status == Phase.TIMEOUT,
            "started": started,
            "finished": now,
            "seconds": round(now - started, 3),
            "phases": [
                {"name": s.phase, "start": s.start, "end": s.end, "seconds": round((s.end or now) - s.start, 3)}
                for s in self.runner.spans
            ],
            "manifests": self.outcome,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "node_limits": self.resources,
            "late_signals": self.late_signals,
            "warnings": self.warnings,
        }
        self.best_effort("write summary.json", lambda: self.paths.summary.write_text(json.dumps(summary, indent=2) + "\n"))
        self.best_effort("write the exit code file", lambda: self.paths.exitcode.write_text(f"{exit_code}\n"))
        self.best_effort("update the run's state record",
                         lambda: records.update(self.spec.run_id, phase=status, exit_code=exit_code, reason=reason))
        self.say(f"done: {status}, exit code {exit_code} ({reason}) in {now - started:.1f}s")
