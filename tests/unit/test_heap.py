"""The agent's collector policy: what is alive gets frozen, and a long pause is logged."""

from __future__ import annotations

import gc
import logging
import time

import pytest

from kubevip import heap


def test_settle_freezes_what_is_alive() -> None:
    before = gc.get_freeze_count()
    keep = [{"n": i} for i in range(1000)]
    heap.settle()
    try:
        assert gc.get_freeze_count() >= before + len(keep)
    finally:
        gc.unfreeze()


def test_a_long_collection_is_logged_once_installed(caplog: pytest.LogCaptureFixture) -> None:
    heap.watch_pauses()
    heap.watch_pauses()
    try:
        assert gc.callbacks.count(heap._timer) == 1
        with caplog.at_level(logging.WARNING, logger="kubevip.heap"):
            heap._timer("start", {"generation": 2})
            heap._started[0] = time.perf_counter() - 1.5  # as if the walk had taken 1.5 s
            heap._timer("stop", {"generation": 2})
            heap._timer("start", {"generation": 0})
            heap._timer("stop", {"generation": 0})
        assert len(caplog.records) == 1
        assert "generation 2" in caplog.text and "1.5" in caplog.text
    finally:
        gc.callbacks.remove(heap._timer)


def test_configure_makes_collections_rarer_and_watches_pauses() -> None:
    before = gc.get_threshold()
    try:
        heap.configure()
        assert gc.get_threshold() == heap.THRESHOLDS
        assert all(a >= b for a, b in zip(gc.get_threshold(), before, strict=True))
        assert heap._timer in gc.callbacks
    finally:
        gc.set_threshold(*before)
        gc.callbacks.remove(heap._timer)
