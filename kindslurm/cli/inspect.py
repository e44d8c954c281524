"""`ls`, `status`, `logs` and `cancel`: what they print of what kindslurm.api finds."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from kindslurm.cli import handle_errors, main

if TYPE_CHECKING:
    from kindslurm.records import Record


def _age(ts: float) -> str:
    from kindslurm.timefmt import human_seconds

    return human_seconds(max(0.0, time.time() - ts))


def _phase(r: Record) -> str:
    """A held interactive cluster shows its time left: `held, 1h52m left`."""
    if r.phase == "held" and r.ends:
        from kindslurm.timefmt import human_seconds

        return f"held, {human_seconds(max(0.0, r.ends - time.time()))} left"
    return str(r.phase)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("-a", "--all", "show_all", is_flag=True, help="Include finished runs.")
@handle_errors
def ls(as_json: bool, show_all: bool) -> None:
    """List your runs with their Slurm state and phase."""
    from kindslurm import api

    rows = api.list_runs(include_finished=show_all)
    if as_json:
        import json
        from dataclasses import asdict

        click.echo(json.dumps([{**asdict(v.record), "slurm_state": v.job_state.slurm_state if v.job_state else None}
                               for v in rows], indent=1))
        return
    if not rows:
        click.echo("No runs." + ("" if show_all else " (`kindslurm ls -a` includes finished ones)"))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("JOB", "RUN", "CLUSTER", "NODE", "SLURM", "PHASE", "EXIT", "AGE"):
        table.add_column(col)
    for v in rows:
        r, js = v.record, v.job_state
        table.add_row(
            r.job_id or ("local" if r.mode == "local" else "-"),
            r.run_id,
            r.cluster or "-",
            r.node or "-",
            js.slurm_state if js else "-",
            _phase(r),
            "" if r.exit_code is None else str(r.exit_code),
            _age(r.created),
        )
    Console(width=max(120, Console().width)).print(table)


@main.command()
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def status(job: str, as_json: bool) -> None:
    """Show one run (by Slurm job id, run id or cluster name)."""
    from kindslurm import api, exitcodes

    view = api.status(job)
    rec, js, summary = view.record, view.job_state, view.summary
    if as_json:
        import json
        from dataclasses import asdict

        click.echo(json.dumps({"record": asdict(rec), "slurm_state": js.slurm_state if js else None, "summary": summary},
                              indent=1))
        sys.exit(0)
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
    if rec.live and rec.interactive and rec.phase == "held":
        click.echo(f"held:      {_phase(rec)}; `kindslurm kubeconfig {rec.prefix}` for kubectl, "
                   f"`kindslurm down {rec.prefix}` to end it")
    elif rec.live and rec.kubeconfig:
        click.echo(f"kubeconfig: {rec.kubeconfig} (on {rec.node})")
    sys.exit(0)


@main.command()
@click.argument("job")
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the run ends.")
@click.option("--job-output", is_flag=True, help="The whole job output (kindslurm's messages too), not just the workload's.")
@click.option("--pod", help="A saved pod log: NAMESPACE/POD[/CONTAINER] or POD.")
@handle_errors
def logs(job: str, follow: bool, job_output: bool, pod: str | None) -> None:
    """Print a run's workload output (or its job output, or a saved pod log)."""
    from kindslurm import api

    if pod:
        chosen = api.pod_logs(job, pod)
        for m in chosen:
            if len(chosen) > 1:
                click.echo(f"==> {m.parent.parent.name}/{m.parent.name}/{m.name} <==")
            click.echo(api.get_transport().read_text(str(m)), nl=False)
        return
    if follow:
        api.follow_log(job, sys.stdout, job_output=job_output)
        if api.is_remote():
            from kindslurm.remote.run import copy_back

            copy_back(job)
        return
    path = api.log_path(job, job_output=job_output)
    try:
        sys.stdout.write(api.get_transport().read_text(str(path)))
    except OSError:
        click.echo(f"(no output yet: {path})", err=True)


@main.command()
@click.argument("job")
@handle_errors
def cancel(job: str) -> None:
    """Cancel a run; its job tears the cluster down before it exits."""
    from kindslurm import api

    click.echo(api.cancel(job).message)
