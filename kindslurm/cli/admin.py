"""`doctor` and `gc`: the commands about this node rather than one run."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from kindslurm.cli import handle_errors, main

if TYPE_CHECKING:
    from kindslurm.node.gc import Action


def _on_login_node(*args: str) -> None:
    """In remote mode these are about the login node: its own kindslurm runs them."""
    from kindslurm import api

    if api.is_remote():
        from kindslurm.remote.interactive import passthrough

        sys.exit(passthrough(*args))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Check whether this node can host kindslurm clusters, with a fix for each problem."""
    import json
    from dataclasses import asdict

    _on_login_node("doctor", *(["--json"] if as_json else []))

    from kindslurm import config, exitcodes
    from kindslurm.cluster.kind_podman import KindPodman
    from kindslurm.node import preflight

    cfg = config.load()
    checks = preflight.run_checks(
        KindPodman(cfg.tool("kind"), cfg.tool("podman")), kubectl=cfg.tool("kubectl"),
        node_image=cfg.node_image, node_image_archive=cfg.node_image_archive,
    )
    if as_json:
        click.echo(json.dumps([asdict(c) for c in checks], indent=1))
    else:
        marks = {"ok": click.style("ok  ", fg="green"), "warn": click.style("warn", fg="yellow"),
                 "error": click.style("FAIL", fg="red")}
        for c in checks:
            click.echo(f"{marks[c.status]} {c.name:<16} {c.detail}")
            if c.fix and c.status != "ok":
                click.echo(f"     {'':<16} fix: {c.fix}")
    bad = preflight.errors(checks)
    if bad and not as_json:
        click.echo(f"\nThis node cannot host kindslurm clusters: {bad[0].line}", err=True)
    sys.exit(exitcodes.PREFLIGHT if bad else 0)


@main.command()
@click.option("-n", "--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--older-than", help="Only collect what is older than this, e.g. 2h.")
@click.option("--job", "job", help="Only what Slurm job JOBID left (Epilog mode).")
@click.option("--all", "include_finished", is_flag=True, help="Also forget finished runs (their records; job directories stay).")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when there is nothing to do.")
@handle_errors
def gc(dry_run: bool, older_than: str | None, job: str | None, include_finished: bool, quiet: bool) -> None:
    """Remove clusters, kubeconfigs and records that dead runs left on this node.

    Only what a kindslurm record or creation marker names is considered, so a
    cluster made by hand or another user's is never touched; nor is a live run
    (its Slurm job pending or running, or its local process alive), a cluster
    being created, or anything with a job while Slurm cannot be asked.
    Exits 1 if something could not be removed.
    """
    _on_login_node("gc", *(["--dry-run"] if dry_run else []), *(["--older-than", older_than] if older_than else []),
                   *(["--job", job] if job else []), *(["--all"] if include_finished else []), *(["-q"] if quiet else []))
    from kindslurm import api, config
    from kindslurm.cluster.kind_podman import KindPodman
    from kindslurm.errors import SpecError
    from kindslurm.node import gc as gcmod
    from kindslurm.timefmt import duration_seconds

    if job is not None and not job.isdigit():
        raise SpecError(f"--job takes a numeric Slurm job id, not {job!r}: pass the number squeue shows")
    cfg = config.load()
    collector = gcmod.Collector(
        KindPodman(cfg.tool("kind"), cfg.tool("podman")), api.get_scheduler(cfg), job=job,
        older_than=duration_seconds(older_than, "--older-than") if older_than else 0.0,
        include_finished=include_finished,
    )
    actions = collector.run(dry_run=dry_run)
    if actions or not quiet:
        render_table(actions, dry_run)
    if not collector.slurm_ok:
        click.echo("warning: Slurm could not be asked; runs with a job id were kept", err=True)
    sys.exit(1 if any(a.failed for a in actions) else 0)


def render_table(actions: list[Action], dry_run: bool) -> None:
    if not actions:
        click.echo("Nothing to collect." if not dry_run else "Nothing would be collected.")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("WHAT", "NAME", "WHY", "RESULT"):
        table.add_column(col)
    for a in actions:
        table.add_row(a.kind, a.name, a.reason, a.result)
    Console(width=max(140, Console().width)).print(table)
