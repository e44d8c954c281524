"""Slurm time limits and human durations."""

from __future__ import annotations

import re

from kindslurm.errors import SpecError

_SLURM_TIME = re.compile(
    r"^(?:(?P<d>\d+)-(?P<dh>\d+)(?::(?P<dm>\d+)(?::(?P<ds>\d+))?)?"
    r"|(?P<a>\d+)(?::(?P<b>\d+)(?::(?P<c>\d+))?)?)$"
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")


def slurm_time_seconds(value: str) -> int:
    """Parse every form sbatch accepts: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.

    Zero and UNLIMITED are refused although Slurm takes them: both mean no
    limit, and the node side plans its teardown by the limit.
    """
    text = value.strip()
    if text.lower() in ("unlimited", "infinite", "-1"):
        raise SpecError(
            f"time limit {value!r} never ends, and kindslurm tears the cluster down by the limit: "
            f"give a finite time, e.g. 1-00:00:00"
        )
    m = _SLURM_TIME.match(text)
    if not m:
        raise SpecError(
            f"bad time limit {value!r}: use Slurm's format, e.g. 30 (minutes), 01:30:00 or 1-12:00:00"
        )
    g = m.groupdict()
    if g["d"] is not None:
        seconds = int(g["d"]) * 86400 + int(g["dh"]) * 3600 + int(g["dm"] or 0) * 60 + int(g["ds"] or 0)
    elif g["c"] is not None:
        seconds = int(g["a"]) * 3600 + int(g["b"]) * 60 + int(g["c"])
    elif g["b"] is not None:
        seconds = int(g["a"]) * 60 + int(g["b"])
    else:
        seconds = int(g["a"]) * 60
    if seconds == 0:
        raise SpecError(f"time limit {value!r} is zero, which Slurm reads as no limit: give a positive time, e.g. 01:00:00")
    return seconds


def duration_seconds(value: str | int | float, what: str = "duration") -> float:
    """Parse 90, 90s, 15m, 2h, 1d."""
    if isinstance(value, (int, float)):
        return float(value)
    m = _DURATION.match(value.strip().lower())
    if not m:
        raise SpecError(f"bad {what} {value!r}: use a number with an optional unit s/m/h/d, e.g. 15m")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def parse_mem_mb(value: str) -> int:
    """Slurm memory sizes: 512, 512M, 8G, 1T (default unit MB)."""
    m = re.match(r"^(\d+)([KMGT]?)B?$", value.strip().upper())
    if not m:
        raise SpecError(f"bad memory size {value!r}: use a number with an optional unit K/M/G/T, e.g. 8G")
    n = int(m.group(1))
    return {"K": max(1, n // 1024), "": n, "M": n, "G": n * 1024, "T": n * 1024 * 1024}[m.group(2)]


def human_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
