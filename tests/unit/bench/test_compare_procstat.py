"""CPU per create of the side-by-side bench's processes (bench/compare/procstat.py)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from compare.procstat import cpu_marks, ms_per_run
from hypothesis import given
from hypothesis import strategies as st

from tests.fixtures.waiting import wait_until


def test_per_run_from_two_marks() -> None:
    before = {"agent node1": (10, 1.0), "kube-apiserver": (20, 5.0)}
    after = {"agent node1": (10, 1.5), "kube-apiserver": (20, 6.0)}
    assert ms_per_run(before, after, 100) == pytest.approx({"agent node1": 5.0, "kube-apiserver": 10.0})


def test_a_restarted_or_gone_process_is_left_out() -> None:
    before = {"agent node1": (10, 1.0), "agent node2": (11, 2.0), "etcd": (30, 3.0)}
    after = {"agent node1": (12, 0.2), "etcd": (30, 3.5)}  # node1 restarted (new pid), node2 gone
    assert ms_per_run(before, after, 10) == pytest.approx({"etcd": 50.0})


def test_no_runs_no_figures() -> None:
    assert ms_per_run({"etcd": (1, 1.0)}, {"etcd": (1, 2.0)}, 0) == {}


@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]),
                    st.tuples(st.integers(1, 5), st.floats(0, 1e4), st.floats(0, 1e4))),
    st.integers(1, 1000),
)
def test_same_pid_gives_the_difference_per_run(marks: dict[str, tuple[int, float, float]], runs: int) -> None:
    before = {n: (pid, b) for n, (pid, b, _a) in marks.items()}
    after = {n: (pid, a) for n, (pid, _b, a) in marks.items()}
    got = ms_per_run(before, after, runs)
    assert set(got) == set(marks)
    for n, (_pid, b, a) in marks.items():
        assert got[n] == pytest.approx(1000.0 * (a - b) / runs)


def test_marks_count_the_whole_tree_and_skip_the_gone(tmp_path: Path) -> None:
    # A live child that burnt CPU counts in its parent's mark (the agent's ExaBGP is its child).
    marker = tmp_path / "burnt"
    child = (
        "import sys, time\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        f"open({str(marker)!r}, 'w').close()\n"
        "sys.stdin.read()\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, '-c', {child!r}])"],
        stdin=subprocess.PIPE,
    )
    try:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        wait_until(marker.exists, "the child burnt its CPU", within=30, interval=0.01)
        marks = cpu_marks({"tree": parent.pid, "gone": gone.pid})
        assert "gone" not in marks
        assert marks["tree"][0] == parent.pid
        own = usage_of_one(parent.pid)
        assert own < 0.25  # the parent alone only started Python and the child
        assert marks["tree"][1] >= 0.29  # ... the tree has the child's 0.3 s too
    finally:
        assert parent.stdin is not None
        parent.stdin.close()  # the child reads EOF and exits, then its parent
        parent.wait(30)


def usage_of_one(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        raw = fh.read()
    fields = raw[raw.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
