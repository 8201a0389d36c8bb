"""Child-process plumbing for the lab: start tied to our life, stop by PID, verify a PID before killing."""

from __future__ import annotations

import ctypes
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
_PR_SET_PDEATHSIG = 1
_jobs: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = queue.SimpleQueue()
_spawner: threading.Thread | None = None
_spawner_lock = threading.Lock()


def _spawner_loop() -> None:
    while True:
        fn, fut = _jobs.get()
        try:
            fut.set_result(fn())
        except BaseException as exc:  # handed back to the caller's thread
            fut.set_exception(exc)


def in_spawner_thread(fn: Callable[[], T]) -> T:
    """Run `fn` (a Popen) in one thread that lives as long as the process.

    PR_SET_PDEATHSIG fires when the *thread* that forked the child exits: a child started from a
    short-lived worker thread (asyncio.to_thread) would be killed when that thread ends.
    """
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_spawner_loop, name="kubevip-lab-spawner", daemon=True)
            _spawner.start()
    fut: Future[object] = Future()
    _jobs.put((fn, fut))
    result: T = fut.result()  # type: ignore[assignment]
    return result


def die_with_parent() -> None:
    """preexec_fn: the kernel sends SIGKILL to the child when the parent dies (tests must not leak)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def terminate(popen: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL; always reaps the child."""
    if popen.poll() is None:
        popen.terminate()
        try:
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            popen.kill()
    popen.wait()


def is_exe(pid: int, exe: str) -> bool:
    """True when `pid` runs the executable `exe` (guards against a recycled PID)."""
    try:
        return os.readlink(f"/proc/{pid}/exe") == str(Path(exe).resolve())
    except OSError:
        return False


def kill_if_exe(pid: int, exe: str, grace: float = 10.0) -> bool:
    """Terminate `pid` only if it still runs `exe`; returns whether it was ours to kill."""
    if not is_exe(pid, exe):
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not is_exe(pid, exe):
            return True
        time.sleep(0.05)
    if is_exe(pid, exe):
        os.kill(pid, signal.SIGKILL)
    return True


def log_tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log file (empty string if it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
