"""Where netlink and raw sockets act: the process's own network namespace, or a named one (tests, lab)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubevip.errors import NetworkError
from kubevip.pyroute2_lazy import submodule

if TYPE_CHECKING:
    from pyroute2.iproute.linux import IPRoute

_local = threading.local()
Socket = socket.socket  # inside Netns, `socket` is the method


@dataclass(frozen=True)
class Netns:
    """A network namespace: `name=None` is the agent's own (the main path); a name is `ip netns` style."""

    name: str | None = None

    @contextmanager
    def iproute(self) -> Iterator[IPRoute]:
        """A netlink socket in this namespace for the `with` block; nested blocks on one thread share it
        (opening one costs a fork for a named namespace, so one public call opens one).

        pyroute2's synchronous API runs its own event loop, so it cannot be used on a thread that already
        runs one: from asyncio, call the synchronous `kubevip.net` APIs through `asyncio.to_thread`.
        """
        open_here: dict[str | None, IPRoute] = _local.__dict__.setdefault("open", {})
        if self.name in open_here:
            yield open_here[self.name]
            return
        ipr = self._open()
        open_here[self.name] = ipr
        lazy: dict[str | None, IPRoute | None] = _local.__dict__.setdefault("lazy", {})
        if self.name in lazy:  # inside shared(): it stays open for the rest of that block
            lazy[self.name] = ipr
            yield ipr
            return
        try:
            yield ipr
        finally:
            del open_here[self.name]
            ipr.close()

    @contextmanager
    def shared(self) -> Iterator[None]:
        """`iproute()` blocks on this thread inside this one share one socket, opened by the first of them
        that runs, if any: most address batches need none (addresses and interface lookups go through
        raw sockets, net/rtnl_batch.py), and opening pyroute2's costs a millisecond or more. Raw
        NETLINK_ROUTE sockets of a named namespace are shared the same way (`socket`)."""
        lazy: dict[str | None, IPRoute | None] = _local.__dict__.setdefault("lazy", {})
        if self.name in lazy:
            yield
            return
        lazy[self.name] = None
        netlink: dict[str | None, Socket | None] = _local.__dict__.setdefault("netlink", {})
        netlink[self.name] = None  # created by the first call that needs it
        try:
            yield
        finally:
            sock = netlink.pop(self.name)
            if sock is not None:
                sock.close()
            ipr = lazy.pop(self.name)
            if ipr is not None:
                _local.__dict__.setdefault("open", {}).pop(self.name, None)
                ipr.close()

    def _open(self) -> IPRoute:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise NetworkError(
                "kubevip.net netlink calls block: call them via asyncio.to_thread(...), not on the event loop"
            )
        # pyroute2.iproute alone, on first use (not pyroute2's __init__: kubevip.pyroute2_lazy)
        iproute: type[IPRoute] = submodule("pyroute2.iproute").IPRoute
        if self.name is None:
            return iproute()
        try:
            # flags=0: never create a missing namespace by accident.
            return iproute(netns=self.name, flags=0)
        except OSError as exc:
            raise NetworkError(f"network namespace {self.name!r} is not usable: {exc}") from exc

    def socket(self, family: int, kind: int, proto: int = 0) -> socket.socket:
        """A socket created inside this namespace (it stays bound to it wherever it is used).

        In a named namespace creating one costs a fork (pyroute2.netns), so inside a `shared()` block one
        NETLINK_ROUTE socket is created and each call gets a duplicate of it (closing the duplicate leaves
        it open; replies an earlier call left unread are dropped first)."""
        if self.name is None:
            return socket.socket(family, kind, proto)
        netlink: dict[str | None, Socket | None] = _local.__dict__.get("netlink", {})
        if self.name not in netlink or (family, proto) != (socket.AF_NETLINK, socket.NETLINK_ROUTE):
            return self._create(family, kind, proto)  # others are bound by their users: one each
        base = netlink[self.name]
        if base is None:
            base = netlink[self.name] = self._create(family, kind, proto)
        else:
            _drain(base)
        return socket.socket(family, kind, proto, fileno=os.dup(base.fileno()))

    def _create(self, family: int, kind: int, proto: int) -> Socket:
        try:
            made: Socket = submodule("pyroute2.netns").create_socket(self.name, family, kind, proto, flags=0)
            return made
        except OSError as exc:
            raise NetworkError(f"network namespace {self.name!r} is not usable: {exc}") from exc

    def __str__(self) -> str:
        return self.name or "<own namespace>"


OWN = Netns()


def _drain(sock: socket.socket) -> None:
    """Drop whatever is waiting on a reused netlink socket (a call that failed midway left it)."""
    while True:
        try:
            sock.recv(65536, socket.MSG_DONTWAIT)
        except OSError:  # EAGAIN: empty now (or ENOBUFS reported once: nothing more to read either way)
            return
