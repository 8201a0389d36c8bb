"""RSS and CPU time of an agent process and its descendants, read from /proc."""

from __future__ import annotations

import os
from collections.abc import Mapping
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


# Name -> (pid, CPU seconds of its tree so far).
CpuMarks = dict[str, tuple[int, float]]


def cpu_marks(pids: Mapping[str, int]) -> CpuMarks:
    """CPU seconds so far of each named process tree; a name whose process is gone is left out."""
    out: CpuMarks = {}
    for name, pid in pids.items():
        u = usage(pid)
        if u is not None:
            out[name] = (pid, u.cpu_s)
    return out


def ms_per_run(before: Mapping[str, tuple[int, float]], after: Mapping[str, tuple[int, float]],
               runs: int) -> dict[str, float]:
    """CPU milliseconds per run of each process named at both ends with the same pid (a process
    restarted in between would count a new tree's time as the old one's: left out, as is everything
    when `runs` is 0)."""
    if runs <= 0:
        return {}
    out: dict[str, float] = {}
    for name, (pid, b) in before.items():
        a = after.get(name)
        if a is not None and a[0] == pid:
            out[name] = 1000.0 * (a[1] - b) / runs
    return out
