"""bench/termination.py: SIGTERM interrupts the bench itself; a forked child exits without unwinding."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "bench"

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import termination
    termination.interrupt_on_sigterm()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # as pyroute2's netns helper: a fork with the bench's stack and handlers
        try:
            os.write(w, b"x")
            signal.pause()
        finally:
            print("child ran the bench's finally", flush=True)  # what tore the lab down
    os.read(r, 1)
    os.kill(pid, signal.SIGTERM)
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status))
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.pause()
    except KeyboardInterrupt:
        print("bench interrupted")
""")


def test_sigterm_interrupts_the_bench_and_ends_a_forked_child_at_once() -> None:
    res = subprocess.run([sys.executable, "-c", SCRIPT, str(BENCH)], capture_output=True, text=True,
                         timeout=30, check=True)
    assert res.stdout.splitlines() == ["child 143", "bench interrupted"], res.stdout + res.stderr
