"""Cluster names: unique per run, valid for kind, traceable to their owner.

A name is `<prefix>-<id>` where the prefix defaults to `ks-<user>` and the id is
the Slurm job id (plus the step id inside an srun step) or a random local id.
Slurm job ids are unique within a cluster, so parallel runs on one node or many
never share a name; a local id is random and checked against existing clusters.
"""

from __future__ import annotations

import getpass
import os
import re
import secrets

from kindslurm.errors import SpecError

# kindslurm's own run ids, and a bridged pod's (`pod-<UID>`: the bridge finds its job again by it)
RUN_ID = re.compile(r"^(?:[0-9]{8}-[0-9]{6}-[0-9a-f]{6}|pod-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
KIND_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")
MAX_PREFIX = 32  # leaves room for the id; kind warns past ~50 characters
MAX_NAME = 50  # node hostnames are `<name>-control-plane`, at most 64


def current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers)
        return str(os.getuid())


def default_prefix(user: str | None = None) -> str:
    user = (user or current_user()).lower()
    clean = re.sub(r"[^a-z0-9]+", "-", user).strip("-")[:16] or "user"
    return f"ks-{clean}"


def validate_prefix(prefix: str) -> str:
    if len(prefix) > MAX_PREFIX:
        raise SpecError(
            f"cluster name {prefix!r} is {len(prefix)} characters: kind allows about 50 in all, "
            f"use at most {MAX_PREFIX} (kindslurm appends the job id)"
        )
    if not KIND_NAME.match(prefix):
        suggestion = re.sub(r"[^a-z0-9.-]+", "-", prefix.lower()).strip("-.") or "ks"
        raise SpecError(
            f"cluster name {prefix!r} is not valid for kind: use lowercase letters, digits, '.' and '-' "
            f"(e.g. {suggestion!r})"
        )
    return prefix


def slurm_cluster_name(prefix: str, job_id: str, step_id: str | None = None) -> str:
    name = f"{prefix}-{job_id}"
    if step_id and step_id.isdigit():
        name += f"-s{step_id}"
    return name


def allocation_cluster_name(prefix: str, job_id: str, run_id: str, step_id: str | None = None,
                            proc_id: str | None = None) -> str:
    """A run inside an allocation: several may share the job (two `kindslurm run`
    in one salloc shell, `srun -n2 kindslurm run`), so the run id's random tail
    and the task make the name unique. The prefix is shortened if needed: node
    hostnames (`<name>-control-plane`) must fit in 64 characters."""
    suffix = slurm_cluster_name("", job_id, step_id)
    tail = re.sub(r"[^a-z0-9]", "", run_id.rsplit("-", 1)[-1].lower())[-6:] or secrets.token_hex(3)
    suffix += f"-{tail}"
    if proc_id and proc_id.isdigit() and proc_id != "0":
        suffix += f"-t{proc_id}"
    head = prefix[: max(1, MAX_NAME - len(suffix))].rstrip("-.") or "ks"
    return head + suffix


def local_cluster_name(prefix: str) -> str:
    return f"{prefix}-l{secrets.token_hex(4)}"


def new_run_id() -> str:
    import time

    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
