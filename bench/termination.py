"""SIGTERM (timeout(1), kill) ends a bench run like Ctrl-C, in the bench's own process only.

The finally blocks then stop the agents and remove the lab. A forked child must not do that:
pyroute2 creates a socket in a namespace from a fork of the bench (no exec), with the bench's stack
and signal handlers, and may SIGTERM it once the socket is handed over. A child raising
KeyboardInterrupt would unwind the bench's stack and run its finally blocks: it tore down the lab
(control plane, namespaces) in the middle of a run. In a child the signal ends the process at once,
as the default action would.
"""

from __future__ import annotations

import os
import signal
from types import FrameType


def interrupt_on_sigterm() -> None:
    """Install the handler: KeyboardInterrupt in this process, immediate exit in a forked child."""
    owner = os.getpid()

    def on_term(signum: int, _frame: FrameType | None) -> None:
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
