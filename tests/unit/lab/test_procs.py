"""Child-process plumbing: children die with the test process, PIDs are checked before any kill."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kubevip.lab import procs
from kubevip.lab.ports import free_port

SPAWN_AND_EXIT = """
import subprocess, sys
from kubevip.lab import procs
p = procs.in_spawner_thread(lambda: subprocess.Popen(["sleep", "300"], preexec_fn=procs.die_with_parent))
print(p.pid, flush=True)
sys.stdin.read()
"""


def wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return True
        time.sleep(0.02)
    return False


def test_children_die_with_the_process_that_started_them() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", SPAWN_AND_EXIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None and parent.stdin is not None
    child = int(parent.stdout.readline())
    assert procs.is_exe(child, "/bin/sleep") or procs.is_exe(child, "/usr/bin/sleep")
    parent.kill()
    parent.wait()
    assert wait_gone(child), f"sleep {child} outlived its parent"


def test_kill_if_exe_refuses_a_pid_running_something_else() -> None:
    p = subprocess.Popen(["sleep", "300"])
    try:
        assert not procs.kill_if_exe(p.pid, sys.executable)
        assert p.poll() is None
        exe = os.readlink(f"/proc/{p.pid}/exe")
        assert procs.kill_if_exe(p.pid, exe, grace=5)
        assert p.wait(timeout=5) != 0
    finally:
        p.kill()
        p.wait()


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert procs.log_tail(tmp_path / "missing.log") == ""


def test_free_port_is_bindable() -> None:
    import socket

    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
