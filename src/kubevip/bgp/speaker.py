"""The BGP speaker: ExaBGP as a supervised child, converged to a desired set of advertisements."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from collections.abc import Set as AbstractSet
from pathlib import Path

from kubevip.bgp import bridge, commands
from kubevip.bgp.advertisement import Advertisement, NextHops, resolve_next_hops
from kubevip.bgp.commands import Key, Route
from kubevip.bgp.config import EXABGP_ENV, render
from kubevip.bgp.ifaddrs import interface_addresses as _netlink_interface_addresses
from kubevip.bgp.ifaddrs import interface_with
from kubevip.bgp.runtime import make_runtime_dir
from kubevip.bgp.settings import SECRET_ENV, BgpSettings, MpbgpNextHop, Peer
from kubevip.errors import BgpError, KubevipError
from kubevip.ip import IPAddress, IPNetwork
from kubevip.tasks import TaskGroupGuard, bounded, spawn

log = logging.getLogger(__name__)



class Speaker:
    """Keeps ExaBGP running and announcing exactly the last set given to `converge`.

    ExaBGP dying (or being killed) is logged and the child restarted with the desired set re-fed;
    nothing here ever raises into the agent because of the child's death.
    """

    def __init__(
        self,
        settings: BgpSettings,
        node_ips: Iterable[IPAddress] = (),
        *,
        runtime_dir: Path | None = None,
        command_prefix: Sequence[str] = (),
        interface_addresses: Callable[[str], list[IPAddress]] | None = None,
        ack_timeout: float = 10.0,
        connect_timeout: float = 30.0,
        restart_backoff: float = 0.5,
    ) -> None:
        if not settings.peers:
            raise BgpError("no BGP peers configured: set bgp_peeraddress or bgp_peers")
        self.settings = settings
        self.node_ips = tuple(node_ips)
        self._runtime_dir = runtime_dir
        self._own_runtime_dir = runtime_dir is None
        self._prefix = tuple(command_prefix)  # e.g. ("ip", "netns", "exec", ns) in tests
        self._if_addrs = interface_addresses or _netlink_interface_addresses
        self._ack_timeout = ack_timeout
        self._connect_timeout = connect_timeout
        self._backoff = restart_backoff
        self._guard = TaskGroupGuard("bgp-speaker")
        self._lock = asyncio.Lock()
        self._desired: dict[IPNetwork, Advertisement] = {}
        self._announced: dict[Key, Route] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._acks: asyncio.Queue[str | None] = asyncio.Queue()
        self._connected = asyncio.Event()
        self._closing = False
        self._proc: asyncio.subprocess.Process | None = None
        self._peer_next_hops: dict[IPAddress, NextHops] = {}
        self.next_hops = NextHops()
        self.router_id: ipaddress.IPv4Address | None = None
        self.peer_states: dict[IPAddress, str] = {p.address: "down" for p in settings.peers}
        self.starts = 0
        self.log_tail: collections.deque[str] = collections.deque(maxlen=50)

    # ---------------------------------------------------------------- public API

    @property
    def pid(self) -> int | None:
        """PID of the running ExaBGP child (None while it is down)."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def connected(self) -> bool:
        """True while ExaBGP runs and its API process is talking to us."""
        return self._connected.is_set()

    async def start(self) -> None:
        """Resolve router id and next hops, write the configuration and start supervising ExaBGP."""
        s = self.settings
        # Netlink in a worker thread: pyroute2's IPRoute cannot be opened inside a running event loop
        # (the agent starts the speaker from its loop; with bgp_sourceip or a src-ip annotation it crashed).
        source_if_addrs = await asyncio.to_thread(self._if_addrs, s.source_if) if s.source_if else []
        source_ip_if_addrs: list[IPAddress] = []
        if s.source_ip is not None:
            source_ip_if_addrs = await asyncio.to_thread(self._addresses_near, s.source_ip)
        # bgp_routerinterface reads that interface over netlink: off the loop too.
        self.router_id = await asyncio.to_thread(self._resolve_router_id)
        ifmap = {s.source_if: source_if_addrs} if s.source_if else {}
        self.next_hops = resolve_next_hops(s.mpbgp, s, self.node_ips, ifmap, source_ip_if_addrs)
        for peer in s.peers:
            if peer.mpbgp is not None:
                merged = _merge(peer.mpbgp, s.mpbgp)
                self._peer_next_hops[peer.address] = resolve_next_hops(
                    merged, s, self.node_ips, ifmap, source_ip_if_addrs
                )
        if self._runtime_dir is None:
            self._runtime_dir = make_runtime_dir()
        self._runtime_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, bridge.__file__, str(self._socket_path)]
        conf = render(s, self.router_id, argv, source_if_addrs)
        # The file holds the peers' passwords: readable by this user only, from its creation on.
        fd = os.open(self._conf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # an older file keeps its mode through O_TRUNC
            f.write(conf)
        log.info(
            "BGP speaker: router id %s, next hops %s, %d peer(s)",
            self.router_id,
            self.next_hops,
            len(s.peers),
        )
        spawn(self._guard, "supervisor", self._supervise())

    async def converge(self, desired: AbstractSet[Advertisement]) -> None:
        """Make the announced set equal `desired` (announce new or changed, withdraw the rest).

        If ExaBGP is down the set is kept and fed on restart. Raises BgpError if ExaBGP refused commands
        or two advertisements share a prefix.
        """
        by_prefix: dict[IPNetwork, Advertisement] = {}
        for adv in sorted(desired, key=_adv_key):
            other = by_prefix.get(adv.prefix)
            if other is not None and other != adv:
                raise BgpError(f"two advertisements for {adv.prefix}: {other} and {adv}; give one per prefix")
            by_prefix[adv.prefix] = adv
        self._desired = by_prefix
        async with self._lock:
            if self._writer is None:
                return  # fed as soon as ExaBGP (re)connects
            try:
                await self._sync()
            except (ConnectionError, TimeoutError) as exc:
                # A stuck or dead child: restart it; the supervisor re-feeds the whole desired set.
                log.warning("BGP speaker: ExaBGP API failed (%s); restarting ExaBGP", exc)
                await self._stop_child(graceful=False)

    async def wait_connected(self) -> None:
        """Wait until ExaBGP runs and its API is connected (wrap in asyncio.timeout)."""
        await self._connected.wait()

    async def close(self) -> None:
        """Withdraw everything, stop ExaBGP (NOTIFICATION Cease to every peer) and the supervisor."""
        self._desired = {}
        if self._connected.is_set():
            try:
                async with asyncio.timeout(self._ack_timeout), self._lock:
                    if self._writer is not None:
                        await self._sync()
            except (TimeoutError, BgpError, ConnectionError) as exc:
                log.warning("BGP speaker: withdrawing on close failed (%s); stopping ExaBGP anyway", exc)
        self._closing = True
        await self._stop_child(graceful=True)
        await self._guard.close()
        if self._own_runtime_dir and self._runtime_dir is not None:
            shutil.rmtree(self._runtime_dir, ignore_errors=True)

    # ---------------------------------------------------------------- resolution

    @property
    def _socket_path(self) -> Path:
        assert self._runtime_dir is not None
        return self._runtime_dir / "api.sock"

    @property
    def _conf_path(self) -> Path:
        assert self._runtime_dir is not None
        return self._runtime_dir / "exabgp.conf"

    def _addresses_near(self, ip: IPAddress) -> list[IPAddress]:
        """Addresses of the interface that carries `ip` (for mpbgp_nexthop=auto_sourceip)."""
        with contextlib.suppress(OSError, KubevipError):
            name = interface_with(ip)
            if name:
                return self._if_addrs(name)
        return []

    def _resolve_router_id(self) -> ipaddress.IPv4Address:
        s = self.settings
        if s.router_id is not None:
            return s.router_id
        candidates: list[IPAddress] = []
        if s.router_interface:
            candidates = self._if_addrs(s.router_interface)
            what = f"interface {s.router_interface} (bgp_routerinterface)"
        else:
            candidates = [*([s.source_ip] if s.source_ip else []), *self.node_ips]
            what = "bgp_sourceip or the node's addresses"
        for ip in candidates:
            if isinstance(ip, ipaddress.IPv4Address) and not ip.is_loopback:
                return ip
        # An IPv6-only node: the router id is still 32 bits (RFC 6286: unique within the AS, not an
        # address). The low 32 bits of the node's first global IPv6 address are stable and, in one
        # subnet, unique per node; bgp_routerid overrides.
        for ip in candidates:
            if (isinstance(ip, ipaddress.IPv6Address) and ip.is_global) or (
                isinstance(ip, ipaddress.IPv6Address) and ip.is_private and not ip.is_link_local
                and not ip.is_loopback
            ):
                rid = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
                if int(rid):
                    log.info("BGP router id %s derived from %s (no IPv4 address in %s; set bgp_routerid "
                             "to choose one)", rid, ip, what)
                    return rid
        raise BgpError(f"no IPv4 address in {what} to use as BGP router id: set bgp_routerid")

    # ---------------------------------------------------------------- commands

    def _route_for(self, peer: Peer, adv: Advertisement) -> Route:
        nh: IPAddress = adv.next_hop
        override = self._peer_next_hops.get(peer.address)
        if override is not None:
            nh = override.for_family(adv.prefix.version) or nh
        return (
            nh,
            " ".join(str(c) for c in adv.communities),
            " ".join(str(c) for c in adv.large_communities),
        )

    async def _sync(self) -> None:
        """Send the diff between what ExaBGP has and what is desired; caller holds the lock."""
        want: dict[Key, Route] = {}
        for peer in self.settings.peers:
            for prefix, adv in self._desired.items():
                want[(peer.address, prefix)] = self._route_for(peer, adv)
        to_announce, to_withdraw = commands.diff(self._announced, want)
        errors: list[str] = []
        # One write for the whole diff, the acknowledgements read after (ExaBGP answers each command in
        # order): a Service's IPv4 and IPv6 routes leave in the same reactor turn, not one round trip
        # through ExaBGP's API apart (40-60 ms between them, measured with bird2).
        announce = list(commands.batches(to_announce))
        withdraw = list(commands.batches([(k, self._announced[k]) for k in to_withdraw]))
        lines = [commands.announce(b) for b in announce] + [commands.withdraw(b) for b in withdraw]
        oks = await self._commands(lines)
        for batch, line, ok in zip(announce, lines, oks, strict=False):
            if ok:
                peer_ip, route, prefixes = batch
                self._announced.update(((peer_ip, p), route) for p in prefixes)
            else:
                errors.append(line)
        for batch, line, ok in zip(withdraw, lines[len(announce):], oks[len(announce):], strict=True):
            if ok:
                for p in batch[2]:
                    del self._announced[(batch[0], p)]
            else:
                errors.append(line)
        if errors:
            raise BgpError(f"ExaBGP refused {len(errors)} command(s), first: {errors[0]}")

    async def _commands(self, lines: list[str]) -> list[bool]:
        """Send API commands in one write and wait for each one's `done` (True) or `error` (False), in
        order. The ack timeout counts per command, from when the previous answer came."""
        if not lines:
            return []
        writer = self._writer
        if writer is None:
            raise ConnectionError("ExaBGP API is not connected")
        writer.write(b"".join(line.encode() + b"\n" for line in lines))
        await writer.drain()
        out: list[bool] = []
        for line in lines:
            answer = await bounded(self._acks.get(), self._ack_timeout)
            if answer is None:
                raise ConnectionError("ExaBGP API closed while waiting for an acknowledgement")
            if answer != "done":
                log.warning("ExaBGP answered %r to: %s", answer, line)
            out.append(answer == "done")
        return out

    # ---------------------------------------------------------------- supervision

    async def _supervise(self) -> None:
        backoff = self._backoff
        while not self._closing:
            started = time.monotonic()
            try:
                await self._run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the child's failure must never take the agent down
                log.warning("BGP speaker: ExaBGP run failed: %s", exc)
            if self._closing:
                return
            if time.monotonic() - started > 60:
                backoff = self._backoff
            tail = " | ".join(list(self.log_tail)[-5:])
            log.warning("BGP speaker: ExaBGP stopped; restarting in %.1fs (last output: %s)", backoff, tail)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    async def _run_once(self) -> None:
        conn: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

        def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if conn.done():
                writer.close()
            else:
                conn.set_result((reader, writer))

        with contextlib.suppress(FileNotFoundError):
            self._socket_path.unlink()
        server = await asyncio.start_unix_server(accept, path=str(self._socket_path))
        # The child needs none of the agent's settings; the peers' passwords stay out of its environment.
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV} | dict(EXABGP_ENV)
        # kubevip.bgp.child: ExaBGP with TCP_NODELAY on the sessions it opens (see there)
        argv = [*self._prefix, sys.executable, "-m", "kubevip.bgp.child", "server", str(self._conf_path)]
        tasks = TaskGroupGuard("bgp-exabgp")
        try:
            self._proc = proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
            self.starts += 1
            assert proc.stdout is not None
            spawn(tasks, "output", self._drain_output(proc.stdout))
            exited = spawn(tasks, "wait", proc.wait())
            done, _ = await asyncio.wait(
                {conn, exited}, timeout=self._connect_timeout, return_when="FIRST_COMPLETED"
            )
            if conn not in done:
                raise BgpError("ExaBGP exited or did not start its API process in time")
            server.close()
            reader, writer = conn.result()
            self._acks = asyncio.Queue()
            reading = spawn(tasks, "reader", self._read(reader))
            async with self._lock:
                # A fresh ExaBGP has an empty RIB: feed it everything that is desired.
                self._announced = {}
                self._writer = writer
                await self._sync()
                self._connected.set()
            log.info("BGP speaker: ExaBGP %d up, %d prefix(es) fed", proc.pid, len(self._desired))
            await asyncio.wait({exited, reading}, return_when="FIRST_COMPLETED")
        finally:
            self._connected.clear()
            self._writer = None
            self._announced = {}
            self._acks.put_nowait(None)
            self.peer_states = dict.fromkeys(self.peer_states, "down")
            server.close()
            if not conn.done():
                conn.cancel()
            elif not conn.cancelled():
                conn.result()[1].close()
            await self._stop_child(graceful=False)
            await tasks.close()

    async def _stop_child(self, graceful: bool) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            await bounded(proc.wait(), 5.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    def redact(self, line: str) -> str:
        """`line` without any peer's password (ExaBGP quotes configuration lines it refuses)."""
        for peer in self.settings.peers:
            if peer.password:
                line = line.replace(peer.password, "***")
        return line

    async def _drain_output(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            line = self.redact(raw.decode(errors="replace").rstrip())
            self.log_tail.append(line)
            log.debug("exabgp: %s", line)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        async for raw in reader:
            line = raw.decode(errors="replace").strip()
            if line in ("done", "error"):
                self._acks.put_nowait(line)
            elif line.startswith("neighbor "):
                self._peer_event(line.split())
            elif line:
                log.debug("exabgp api: %s", line)
        self._acks.put_nowait(None)

    def _peer_event(self, words: list[str]) -> None:
        # Text encoder: "neighbor <ip> up|connected|down - <reason>"
        if len(words) < 3:
            return
        try:
            ip = ipaddress.ip_address(words[1])
        except ValueError:
            return
        if words[2] in ("up", "down", "connected") and ip in self.peer_states:
            self.peer_states[ip] = words[2]
            log.info("BGP peer %s %s", ip, " ".join(words[2:]))


def _adv_key(adv: Advertisement) -> tuple[int, int, str]:
    return (adv.prefix.version, int(adv.prefix.network_address), repr(adv))


def _merge(peer: MpbgpNextHop, default: MpbgpNextHop) -> MpbgpNextHop:
    """kube-vip's rule: a peer's empty MP-BGP field falls back to the global one."""
    return MpbgpNextHop(peer.mode or default.mode, peer.ipv4 or default.ipv4, peer.ipv6 or default.ipv6)
