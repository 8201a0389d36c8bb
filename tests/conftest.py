"""Test-suite wide rules: under CI a missing prerequisite or any skip fails; no asyncio task may leak
(tests/fixtures/leaks.py)."""

from __future__ import annotations

from hypothesis import settings

pytest_plugins: list[str] = [
    "tests.fixtures.prereqs",
    "tests.fixtures.leaks",
    "tests.fixtures.cluster",
    "tests.fixtures.lab",
]


# Property tests share two cores with control planes and agents: a wall-clock deadline per example would
# fail a correct property because the machine was busy (it did: 331 ms against the 200 ms default).
settings.register_profile("kubevip", deadline=None)
settings.load_profile("kubevip")

