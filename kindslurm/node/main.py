"""`kindslurm node-run SPEC`: the entry point of the node side, called by the
batch script (or srun) inside the allocation with the spec the submit side wrote."""

from __future__ import annotations

from kindslurm.node.lifecycle import Lifecycle
from kindslurm.spec import JobSpec


def node_run(spec_path: str) -> int:
    return Lifecycle(JobSpec.load(spec_path)).run()
