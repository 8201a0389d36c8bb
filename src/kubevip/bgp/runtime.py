"""ExaBGP's runtime directory (its config holds peer passwords), and removing those of dead agents."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "kubevip-bgp-"


def make_runtime_dir(parent: Path | None = None) -> Path:
    """A private (0700) directory named after this process, after sweeping those of dead processes."""
    base = Path(parent or tempfile.gettempdir())
    sweep_stale(base)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=base))


def sweep_stale(base: Path) -> list[Path]:
    """Remove runtime directories whose agent is gone (a SIGKILLed agent cannot clean up after itself)."""
    removed: list[Path] = []
    for d in base.glob(f"{PREFIX}*-*"):
        pid = d.name[len(PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or not d.is_dir() or d.stat().st_uid != os.getuid():
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    if removed:
        log.info("removed %d BGP runtime dir(s) of agents that are gone", len(removed))
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
