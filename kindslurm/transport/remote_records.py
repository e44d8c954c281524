"""Records read through a transport: in remote mode `ls`, `status`, `logs` and
`cancel` see the login node's records, which the runs there keep up to date.
Reading only: records are written where the run lives."""

from __future__ import annotations

import posixpath

from kindslurm import records
from kindslurm.transport.base import Transport


class TransportRecords:
    """A records.Source for a records directory on the transport's host."""

    def __init__(self, transport: Transport, records_dir: str) -> None:
        self.transport = transport
        self.dir = records_dir

    def all(self) -> list[records.Record]:
        found = []
        for path in self.transport.list_dir(self.dir, "*.json"):
            rec = self._read(path)
            if rec is not None:
                found.append(rec)
        return sorted(found, key=lambda r: r.created)

    def load(self, run_id: str) -> records.Record | None:
        if not run_id or "/" in run_id or run_id.startswith("."):
            return None
        return self._read(posixpath.join(self.dir, f"{run_id}.json"))

    def _read(self, path: str) -> records.Record | None:
        try:
            return records.parse(self.transport.read_text(path))
        except OSError:
            return None
