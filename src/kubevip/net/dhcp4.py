"""One DHCPv4 client on one interface (pyroute2's AsyncDHCPClient): DISCOVER or INIT-REBOOT for the
address asked first, renew at T1, rebind at T2, expire, release on request. It reports every lease event
to its owner and configures nothing itself (the agent places the address like any VIP).

pyroute2.dhcp is pyroute2's own (the netlink library kubevip already uses), asyncio native, RFC 2131's
state machine with T1/T2/expiry timers and retransmission backoff; it sends on a raw socket, so the
macvlan needs no address to renew, and it never touches the interface unless given hooks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable

from pyroute2.dhcp.client import AsyncDHCPClient, ClientConfig
from pyroute2.dhcp.enums import dhcp as dhcp_enums
from pyroute2.dhcp.hooks import Hook, Trigger
from pyroute2.dhcp.leases import Lease

from kubevip.net.dhcp_lease import BOUND, EXPIRED, REBOUND, RENEWED, UNBOUND, LeaseEvent

log = logging.getLogger(__name__)


_TRIGGERS = {
    Trigger.BOUND: BOUND, Trigger.RENEWED: RENEWED, Trigger.REBOUND: REBOUND,
    Trigger.EXPIRED: EXPIRED, Trigger.UNBOUND: UNBOUND,
}


class _RequestedLease(Lease):  # type: ignore[misc]  # pyroute2 is untyped here
    """No file: a lease is "loaded" only to ask the address `kube-vip.io/requestedIP` names first
    (INIT-REBOOT, RFC 2131 3.2), as kube-vip does after a failover. Its lease time 0 means it is expired
    from the start, so it is never released nor timed."""

    requested: dict[str, str] = {}

    def dump(self) -> None:
        return None

    @classmethod
    def load(cls, interface: str) -> _RequestedLease | None:
        address = cls.requested.pop(interface, None)
        if address is None:
            return None
        return cls(ack={"yiaddr": address, "options": {"lease_time": 0}}, interface=interface,
                   server_mac="")


def _option(lease: Lease, name: str) -> float | None:
    value = lease.ack["options"].get(name)
    return float(value) if isinstance(value, int) and value >= 0 else None


class Dhcp4Client:
    """Runs until `stop`; `on_event` is called on the event loop for every lease event."""

    def __init__(
        self, interface: str, client_id: bytes, hostname: str, requested: str | None,
        on_event: Callable[[LeaseEvent], None],
    ) -> None:
        self.interface = interface
        self._client_id = client_id
        self._hostname = hostname
        self._requested = requested
        self._on_event = on_event
        self._stop = asyncio.Event()
        self._release = False
        self.state = "off"

    async def _hook(self, trigger: Trigger, lease: Lease) -> None:
        age = max(0.0, time.time() - float(lease.obtained))
        lease_time = _option(lease, "lease_time") or 0.0
        server = ""
        with contextlib.suppress(Exception):
            server = str(lease.server_id)
        self._on_event(LeaseEvent(
            _TRIGGERS[trigger], ipaddress.IPv4Address(lease.ip), time.monotonic() - age, lease_time,
            _option(lease, "renewal_time"), _option(lease, "rebinding_time"), server,
        ))

    def _hooks(self) -> list[Hook]:
        out = []
        for trigger in _TRIGGERS:
            async def func(lease: Lease, trigger: Trigger = trigger) -> None:
                await self._hook(trigger, lease)
            func.__name__ = f"kubevip_{trigger}"
            out.append(Hook(func, {trigger}))
        return out

    async def run(self) -> None:
        """Lease and keep leasing until `stop()`; a RELEASE is sent on the way out only if asked."""
        if self._requested:
            _RequestedLease.requested[self.interface] = self._requested
        cfg = ClientConfig(
            interface=self.interface,
            lease_type=_RequestedLease,
            hooks=self._hooks(),
            requested_parameters=(
                dhcp_enums.Option.SUBNET_MASK, dhcp_enums.Option.LEASE_TIME,
                dhcp_enums.Option.RENEWAL_TIME, dhcp_enums.Option.REBINDING_TIME,
            ),
            release=False,
            client_id=None,  # hardware type 1 + the macvlan's MAC: core.dhcp.client_id's bytes
            handle_signals=False,  # several clients per process; signals are the agent's
            vendor_id="kubevip",
            host_name=self._hostname or None,
            write_pidfile=False,
        )
        try:
            client = AsyncDHCPClient(cfg)
            async with client:
                await client.bootstrap()
                self.state = "running"
                await self._stop.wait()
                # pyroute2 reads `release` on exit: a failover hands the lease to the next holder (same MAC
                # and client id), a deleted Service gives its address back.
                cfg.release = self._release
        finally:
            _RequestedLease.requested.pop(self.interface, None)
            self.state = "off"

    def stop(self, release: bool) -> None:
        self._release = release
        self._stop.set()
