"""RSS and CPU time of an agent process and its descendants, read from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Usage:
    """Resident memory (bytes) and cumulative CPU seconds (user + system) of a process tree."""

    rss_bytes: int
    cpu_s: float


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def descendants(pid: int) -> list[int]:
    """pid and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def usage(pid: int) -> Usage | None:
    """Current usage of pid's process tree, or None when pid is gone."""
    rss = 0
    cpu = 0.0
    seen = False
    for p in descendants(pid):
        fields = _stat_fields(p)
        if fields is None or fields[0] in ("Z", "X"):  # gone, or exited and not yet reaped
            continue
        seen = True
        cpu += (int(fields[11]) + int(fields[12])) / _TICK
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return Usage(rss, cpu) if seen else None
