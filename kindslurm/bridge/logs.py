"""`/containerLogs`: the kubelet's log options over a pod's run.

While the run's cluster is up, the request goes to the inner API server with
the same options and its answer is streamed back chunk by chunk (so
`kubectl logs -f` follows). Once the pod has ended, or its cluster is gone,
the log the node side saved (every line with the kubelet's timestamp) is
served with the options applied here: sinceSeconds/sinceTime, tailLines,
timestamps, limitBytes, previous.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Mapping

OPTIONS = ("follow", "tailLines", "timestamps", "sinceSeconds", "sinceTime", "limitBytes", "previous")


class BadOption(ValueError):
    """An option the kubelet would refuse too (the message is the answer's body)."""


def _stamp(text: str) -> dt.datetime | None:
    """RFC 3339 with nanoseconds, as the kubelet writes it; microseconds are enough to compare."""
    if not text:
        return None
    t = text.replace("Z", "+00:00")
    if "." in t:
        head, rest = t.split(".", 1)
        digits = rest[:len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        t = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        stamp = dt.datetime.fromisoformat(t)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.timezone.utc)


def _int(query: Mapping[str, str], name: str) -> int | None:
    if name not in query or query[name] == "":
        return None
    try:
        value = int(query[name])
    except ValueError:
        raise BadOption(f"{name} must be a whole number, got {query[name]!r}") from None
    if value < 0 or (name in ("limitBytes", "sinceSeconds") and value == 0):
        raise BadOption(f"{name} must be {'positive' if name != 'tailLines' else 'zero or more'}, got {value}")
    return value


def is_true(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").lower() in ("1", "true", "yes")


def saved(text: bytes, query: Mapping[str, str], now: dt.datetime | None = None) -> bytes:
    """A saved log (`<RFC3339Nano> <line>` per line) with the kubelet's options applied."""
    if query.get("sinceSeconds") and query.get("sinceTime"):
        raise BadOption("at most one of sinceTime or sinceSeconds may be specified")
    since: dt.datetime | None = None
    seconds = _int(query, "sinceSeconds")
    if seconds is not None:
        since = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(seconds=seconds)
    elif query.get("sinceTime"):
        since = _stamp(query["sinceTime"])
        if since is None:
            raise BadOption(f"sinceTime must be RFC 3339, got {query['sinceTime']!r}")
    lines = text.splitlines(keepends=True)
    tail = _int(query, "tailLines")
    if tail is not None:  # the kubelet takes the tail first, then drops what is older than `since`
        lines = lines[len(lines) - tail:] if tail else []
    if since is not None:
        lines = [ln for ln in lines if (ts := _stamp(ln.split(b" ", 1)[0].decode(errors="replace"))) is None or ts >= since]
    if not is_true(query, "timestamps"):
        lines = [ln.split(b" ", 1)[1] if b" " in ln else b"\n" for ln in lines]
    out = b"".join(lines)
    limit = _int(query, "limitBytes")
    return out[:limit] if limit is not None else out


def pick(instances: list[tuple[int, Path]], previous: bool) -> Path | None:
    """The latest saved instance of a container, or the one before it with `previous`."""
    if previous:
        return instances[-2][1] if len(instances) >= 2 else None
    return instances[-1][1] if instances else None


def inner_query(query: Mapping[str, str], container: str) -> dict[str, str]:
    """The options as the inner API server's pod log endpoint takes them."""
    out = {"container": container}
    for name in OPTIONS:
        if name in query:
            out[name] = query[name]
    return out
