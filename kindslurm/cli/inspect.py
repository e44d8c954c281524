"""What `ls`, `status`, `logs`, `cancel` and `doctor` show."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path

import click

from kindslurm import config, exitcodes, proc, records
from kindslurm.errors import KindslurmError
from kindslurm.paths import JobPaths
from kindslurm.scheduler.slurm import JobState, Slurm, StatesUnknown


def _slurm() -> Slurm:
    return Slurm(config.load().tools)


def _age(ts: float) -> str:
    from kindslurm.timefmt import human_seconds

    return human_seconds(max(0.0, time.time() - ts))


def _slurm_states(recs: list[records.Record]) -> dict[str, JobState]:
    ids = [r.job_id for r in recs if r.job_id]
    if not ids:
        return {}
    try:
        return _slurm().states(ids)
    except StatesUnknown as e:
        return e.partial
    except KindslurmError:
        return {}


def _find(ref: str) -> records.Record:
    rec = records.find(ref)  # AmbiguousRef (USAGE) lists the candidates
    if rec is None:
        raise KindslurmError(f"no run {ref!r}: see `kindslurm ls -a` for your runs", exit_code=exitcodes.USAGE)
    return rec


def ls(as_json: bool, show_all: bool) -> None:
    recs = records.all_records()
    slurm_states = _slurm_states([r for r in recs if r.live])
    rows = [r for r in recs if show_all or r.live]
    if as_json:
        click.echo(json.dumps([
            {**asdict(r), "slurm_state": slurm_states[r.job_id].slurm_state if r.job_id in slurm_states else None}
            for r in rows
        ], indent=1))
        return
    if not rows:
        click.echo("No runs." + ("" if show_all else " (`kindslurm ls -a` includes finished ones)"))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("JOB", "RUN", "CLUSTER", "NODE", "SLURM", "PHASE", "EXIT", "AGE"):
        table.add_column(col)
    for r in rows:
        js = slurm_states.get(r.job_id or "")
        table.add_row(
            r.job_id or ("local" if r.mode == "local" else "-"),
            r.run_id,
            r.cluster or "-",
            r.node or "-",
            js.slurm_state if js else "-",
            r.phase,
            "" if r.exit_code is None else str(r.exit_code),
            _age(r.created),
        )
    Console(width=max(120, Console().width)).print(table)


def status(ref: str, as_json: bool) -> int:
    rec = _find(ref)
    js = _slurm_states([rec]).get(rec.job_id or "") if rec.job_id else None
    summary_path = JobPaths(Path(rec.job_dir)).summary
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    if as_json:
        click.echo(json.dumps({"record": asdict(rec), "slurm_state": js.slurm_state if js else None, "summary": summary}, indent=1))
        return 0
    click.echo(f"run:       {rec.run_id}")
    click.echo(f"job:       {rec.job_id or '-'} ({rec.mode})" + (f", Slurm {js.slurm_state}" if js else ""))
    if js and js.state == "pending" and js.explanation:
        click.echo(f"pending:   {js.explanation}")
    click.echo(f"cluster:   {rec.cluster or '-'} on {rec.node or '-'}")
    click.echo(f"phase:     {rec.phase}" + (f" ({rec.reason})" if rec.reason else ""))
    if rec.exit_code is not None:
        click.echo(f"exit code: {rec.exit_code} ({exitcodes.DESCRIPTIONS.get(rec.exit_code, 'the workload')})")
    click.echo(f"job dir:   {rec.job_dir}")
    if summary:
        click.echo("phases:")
        for p in summary.get("phases", []):
            click.echo(f"  {p['name']:<13} {p['seconds']:>8.1f}s")
    if rec.live and rec.kubeconfig:
        click.echo(f"kubeconfig: {rec.kubeconfig} (on {rec.node})")
    return 0


def logs(ref: str, follow: bool, job_output: bool, pod: str | None) -> None:
    rec = _find(ref)
    job = JobPaths(Path(rec.job_dir))
    if pod:
        parts = pod.split("/")
        matches = sorted(job.pod_logs.glob("*/*/*.log"))
        chosen = [m for m in matches if "/".join(m.with_suffix("").parts[-len(parts):]) == pod or m.parent.name == pod]
        if not chosen:
            raise KindslurmError(f"no saved log for pod {pod!r} in {job.pod_logs}: pods saved are "
                                 + ", ".join(sorted({f'{m.parent.parent.name}/{m.parent.name}' for m in matches})[:20]),
                                 exit_code=exitcodes.USAGE)
        for m in chosen:
            if len(chosen) > 1:
                click.echo(f"==> {m.relative_to(job.pod_logs)} <==")
            click.echo(m.read_text(), nl=False)
        return
    path = job.slurm_out if job_output else job.workload_log
    if not follow:
        if not path.exists():
            click.echo(f"(no output yet: {path})", err=True)
            return
        sys.stdout.write(path.read_text())
        return
    from kindslurm.scheduler.watch import Follower

    f = Follower(path, sys.stdout)
    while True:
        f.poll()
        cur = records.load(rec.run_id)
        if cur is None or not cur.live:
            f.flush_rest()
            return
        time.sleep(1)


def cancel(ref: str) -> None:
    """Stop one run and nothing else: an inline or srun run shares its
    allocation with whatever else the user runs there, so only sbatch runs and
    srun runs that made their own job are cancelled as whole jobs."""
    rec = _find(ref)
    if not rec.live:
        click.echo(f"run {rec.run_id} already ended ({rec.phase})")
        return
    cluster = rec.cluster or "(not created yet)"
    if rec.mode == "sbatch":
        if not rec.job_id:
            raise KindslurmError(f"run {rec.run_id} has no job id yet (being submitted): try again in a moment")
        _slurm().cancel(rec.job_id)
        click.echo(f"cancelled job {rec.job_id}; it tears down cluster {cluster}")
    elif rec.mode != "local" and rec.job_id and rec.step_id:
        _slurm().cancel(rec.job_id, rec.step_id)
        click.echo(f"cancelled step {rec.job_id}.{rec.step_id}; it tears down cluster {cluster}")
    elif rec.mode == "srun":
        if not rec.job_id:
            raise KindslurmError(f"run {rec.run_id} is still waiting for srun to start it: press Ctrl-C where it runs")
        _slurm().cancel(rec.job_id)
        click.echo(f"cancelled job {rec.job_id}; it tears down cluster {cluster}")
    elif rec.node and rec.node != socket.gethostname():
        raise KindslurmError(f"run {rec.run_id} runs on node {rec.node}: run `kindslurm cancel {rec.run_id}` there")
    elif proc.alive(rec.pid, rec.pid_start):
        assert rec.pid
        os.kill(rec.pid, signal.SIGTERM)
        click.echo(f"sent SIGTERM to {rec.mode} run {rec.run_id} (pid {rec.pid}); it tears down cluster {cluster}")
    else:
        raise KindslurmError(f"run {rec.run_id} has no live process: `kindslurm gc` removes what it left")


def doctor(as_json: bool) -> int:
    from kindslurm.node import preflight

    cfg = config.load()
    checks = preflight.run_checks(
        podman=cfg.tool("podman"), kind=cfg.tool("kind"), kubectl=cfg.tool("kubectl"),
        node_image=cfg.node_image, node_image_archive=cfg.node_image_archive,
    )
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        marks = {"ok": click.style("ok  ", fg="green"), "warn": click.style("warn", fg="yellow"), "error": click.style("FAIL", fg="red")}
        for c in checks:
            click.echo(f"{marks[c.status]} {c.name:<16} {c.detail}")
            if c.fix and c.status != "ok":
                click.echo(f"     {'':<16} fix: {c.fix}")
    bad = preflight.errors(checks)
    if bad and not as_json:
        click.echo(f"\nThis node cannot host kindslurm clusters: {bad[0].line}", err=True)
    return exitcodes.PREFLIGHT if bad else 0
