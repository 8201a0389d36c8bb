"""The suite's own guards really fire: a leaked asyncio task fails its test, a skip fails under CI, and
the CI switch accepts the usual truthy spellings. Each guard runs in a child pytest on a scratch test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.prereqs import ci_enabled

REPO = Path(__file__).resolve().parents[2]

LEAKY = '''
import asyncio

async def test_leaks_a_task():
    asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="left-behind")

async def test_cleans_up():
    t = asyncio.get_running_loop().create_task(asyncio.sleep(3600), name="cancelled")
    t.cancel()

def test_sync_is_untouched():
    assert True
'''

SKIPPY = '''
import pytest

def test_skips():
    pytest.skip("no prerequisite here")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def run_child(tmp_path: Path, source: str, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_scratch.py").write_text(source)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\n")
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = str(REPO)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "tests.fixtures.leaks",
         "-rA", "-q", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


def test_a_leaked_task_fails_the_test_that_leaked_it(tmp_path: Path) -> None:
    out = run_child(tmp_path, LEAKY, ci=None)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "ERROR test_scratch.py::test_leaks_a_task" in out.stdout, out.stdout
    assert "left-behind" in out.stdout
    assert "PASSED test_scratch.py::test_cleans_up" in out.stdout
    assert "PASSED test_scratch.py::test_sync_is_untouched" in out.stdout


def test_a_skip_fails_under_ci(tmp_path: Path) -> None:
    out = run_child(tmp_path, SKIPPY, ci="Yes")  # the spellings themselves: test_ci_truthy_spellings
    assert out.returncode == 1, out.stdout
    assert "FAILED test_scratch.py::test_skips" in out.stdout
    assert "skipped under CI" in out.stdout
    assert "XFAIL test_scratch.py::test_expected_failure" in out.stdout


def test_a_skip_stays_a_skip_off_ci(tmp_path: Path) -> None:
    out = run_child(tmp_path, SKIPPY, ci="false")
    assert out.returncode == 0, out.stdout
    assert "SKIPPED" in out.stdout


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "Yes", "on", "ON", " true "])
def test_ci_truthy_spellings(value: str) -> None:
    assert ci_enabled({"CI": value})


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "nope"])
def test_ci_falsy_spellings(value: str) -> None:
    assert not ci_enabled({"CI": value})
    assert not ci_enabled({})


def test_ci_script_exports_ci_itself() -> None:
    lines = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    export = next(i for i, line in enumerate(lines) if line.startswith("export CI="))
    run = next(i for i, line in enumerate(lines) if "hack/test" in line and not line.startswith("#"))
    assert export < run and ci_enabled({"CI": lines[export].split("=", 1)[1]}), lines
