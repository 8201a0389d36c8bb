"""Test-suite wide rules: under CI=true a missing prerequisite fails; no asyncio task may leak."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

pytest_plugins: list[str] = [
    "tests.fixtures.prereqs",
    "tests.fixtures.cluster",
    "tests.fixtures.lab",
]

IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests share two cores with control planes and agents: a wall-clock deadline per example would
# fail a correct property because the machine was busy (it did: 331 ms against the 200 ms default).
settings.register_profile("kubevip", deadline=None)
settings.load_profile("kubevip")


@pytest.fixture(autouse=True)
def _no_leaked_tasks() -> Iterator[None]:
    """Fail a test that leaves asyncio tasks running on a loop that is still open."""
    yield
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    leaked = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not asyncio.current_task(loop)]
    assert not leaked, f"leaked asyncio tasks: {[t.get_name() for t in leaked]}"
