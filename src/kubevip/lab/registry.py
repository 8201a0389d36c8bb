"""Machine-wide list of labs that must die with the process that created them (test sessions).

A test run killed with SIGKILL cannot tear its lab down; the next lab started on the machine (or
`kubevip lab gc`) finds the entry, sees its owner gone (PID and start time), and removes that lab.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def registry_dir() -> Path:
    return Path("/run/kubevip-lab") if os.access("/run", os.W_OK) else Path("/tmp/kubevip-lab")


def process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (distinguishes a recycled PID), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22, counted after the parenthesised command name (which may contain spaces).
    return stat.rsplit(")", 1)[1].split()[19]


def register(lab_id: str, state_dir: Path) -> None:
    """Record that lab `lab_id` belongs to this process."""
    d = registry_dir()
    d.mkdir(parents=True, exist_ok=True)
    doc = {"lab_id": lab_id, "state_dir": str(state_dir), "owner_pid": os.getpid(),
           "owner_start": process_start(os.getpid())}
    tmp = d / f".{lab_id}.tmp"
    tmp.write_text(json.dumps(doc))
    tmp.replace(d / f"{lab_id}.json")


def unregister(lab_id: str) -> None:
    (registry_dir() / f"{lab_id}.json").unlink(missing_ok=True)


def orphans() -> list[dict[str, Any]]:
    """Entries whose owning process no longer runs."""
    out = []
    d = registry_dir()
    for path in sorted(d.glob("*.json")) if d.is_dir() else []:
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if process_start(int(doc["owner_pid"])) != doc.get("owner_start"):
            out.append(doc)
    return out
