"""This node's report Lease for `kubevip status` (core/report.py, docs/status.md).

Written when the VIPs on this node's interfaces change, and every REPORT_PERIOD as a heartbeat; emptied
on shutdown. Never on the election's path: a slow or failing write here delays no Lease renewal (the
election has its own client) and only makes `kubevip status` lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from kubevip import __version__
from kubevip.core.report import (
    REPORT_DURATION,
    REPORT_LABEL,
    REPORT_PERIOD,
    AgentReport,
    HeldVip,
    encode,
    report_lease_name,
    sort_key,
)
from kubevip.errors import describe
from kubevip.ip import NodeName
from kubevip.kube.errors import TRANSIENT
from kubevip.kube.writers import Writer

log = logging.getLogger(__name__)

# Changes closer together than this share one write (hundreds of VIPs moving in a burst of passes).
MIN_INTERVAL = 0.3

# Errors of one write that a later write retries (kube.errors: any refused or failed request).
ERRORS: tuple[type[BaseException], ...] = TRANSIENT


class Presence:
    """Publishes the latest `AgentReport`; `update` is cheap and may be called on every pass."""

    def __init__(
        self, writer: Writer, namespace: str, node: str, election: str, mode: str,
        period: float = REPORT_PERIOD,
    ) -> None:
        self.writer = writer
        self.namespace = namespace
        self.name = report_lease_name(node)
        self.node = node
        self.period = period
        self._report = AgentReport(NodeName(node), __version__, election, mode, ())
        self._written: AgentReport | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._version = ""  # resourceVersion of our last write: the next PUT's precondition
        self.writes = 0

    def update(self, vips: tuple[HeldVip, ...]) -> None:
        vips = tuple(sorted(vips, key=sort_key))
        if vips != self._report.vips:
            self._report = AgentReport(
                self._report.node, self._report.version, self._report.election, self._report.mode, vips
            )
            self._wake.set()

    async def _write(self, report: AgentReport, holder: str) -> bool:
        try:
            self._version = await self.writer.agent_report(
                self.namespace, self.name, {REPORT_LABEL: "true"}, encode(report), holder, REPORT_DURATION,
                self._version,
            )
        except ERRORS as exc:
            self._version = ""
            log.info("report Lease %s/%s not written (retrying): %s", self.namespace, self.name,
                     describe(exc))
            return False
        self.writes += 1
        return True

    async def run(self) -> None:
        """Write on change at once, else once per period; a failed write is retried a second later."""
        last = -self.period
        while True:
            wait = max(0.0, last + self.period - time.monotonic())
            if self._report == self._written:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            report = self._report
            if await self._write(report, self.node):
                self._written = report
                last = time.monotonic()
                await asyncio.sleep(MIN_INTERVAL)  # rate limit: later changes coalesce into one write
            else:
                await asyncio.sleep(1.0)  # backoff of a failed write, not synchronisation

    async def release(self, within: float = 2.0) -> None:
        """On shutdown (after every VIP was withdrawn): no VIPs, no holder, so peers see the node gone."""
        self._closed = True
        self._wake.set()
        r = self._report
        empty = AgentReport(r.node, r.version, r.election, r.mode, ())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                await self._write(empty, "")
