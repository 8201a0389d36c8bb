"""The lab router's RIB as the benchmark reads it: {VIP: next hops}, both families, one CLI call each."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kubevip.errors import BgpError
from kubevip.lab.bgp import LabBgp
from kubevip.lab.instance import LabInstance
from kubevip.lab.network import LabNetwork
from kubevip.lab.routers import Router


@dataclass
class RibReader:
    """Reads the routes of the router that `kubevip lab up --bgp DAEMON` started in lab `lab_id`."""

    router: Router
    daemon: str
    address: str

    @classmethod
    def for_lab(cls, lab_id: str) -> RibReader | None:
        """None when the lab runs no router (the lab was brought up without --bgp)."""
        inst = LabInstance(lab_id)
        bgp = LabBgp(LabNetwork(lab_id, state_dir=inst.state_dir), inst.state_dir)
        router, doc = bgp.reader(), bgp.state()
        if router is None or doc is None:
            return None
        return cls(router, str(doc["daemon"]), str(doc["router"]["ipv4"]))

    def routes(self) -> dict[str, set[str]]:
        """Host routes (/32, /128) the router holds, by address, with their next hops; {} if the CLI
        does not answer (a daemon busy re-reading its peers must not end a run)."""

        async def both() -> dict[str, set[str]]:
            out: dict[str, set[str]] = {}
            for version in (4, 6):
                for net, hops in (await self.router.rib(version)).items():
                    if net.prefixlen == net.max_prefixlen:
                        out[str(net.network_address)] = {str(h) for h in hops}
            return out

        try:
            return asyncio.run(both())
        except BgpError:
            return {}


    def established(self) -> int:
        """How many BGP sessions the router has established (0 if the CLI does not answer)."""
        try:
            return asyncio.run(self.router.established())
        except BgpError:
            return 0


@dataclass(frozen=True)
class RouteEvent:
    """A host route to `dst` appeared ("add") in or left ("del") the router's kernel table at time t."""

    t: float
    op: str
    dst: str


def first_after(events: Iterable[RouteEvent], op: str, dst: str, since: float) -> float:
    """Seconds from `since` to the first `op` event for `dst` at or after it; NaN when there is none."""
    times = [e.t for e in events if e.op == op and e.dst == dst and e.t >= since]
    return min(times) - since if times else math.nan


@dataclass
class RouteWatch:
    """routewatch.py in the router's namespace: when each host route reached the router's kernel table.

    Only for daemons that program the kernel (`Router.installs_routes`: bird2, FRR)."""

    path: Path
    proc: subprocess.Popen[bytes]
    _read: int = 0
    _events: list[RouteEvent] = field(default_factory=list)

    @classmethod
    def start(cls, netns: str, workdir: Path) -> RouteWatch:
        path = workdir / f"routewatch-{int(time.time() * 1000)}.jsonl"
        with path.open("wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve().parent / "routewatch.py"), "--netns", netns],
                stdout=fh, stderr=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + 60
        while path.stat().st_size == 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # nothing is timed before the watcher reports ready
        if path.stat().st_size == 0:
            proc.kill()
            proc.wait(5)
            raise BgpError(f"routewatch.py in {netns} did not start (exit {proc.poll()})")
        return cls(path, proc)

    def events(self) -> list[RouteEvent]:
        """Every event so far (the file is read on from where the last call stopped)."""
        with self.path.open("rb") as fh:
            fh.seek(self._read)
            data = fh.read()
        done = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._read += done
        for line in data[:done].splitlines():
            doc = json.loads(line)
            if doc.get("op") in ("add", "del"):
                self._events.append(RouteEvent(float(doc["t"]), str(doc["op"]), str(doc["dst"])))
        return list(self._events)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def family_of(addr: str) -> str:
    return "ipv6" if ipaddress.ip_address(addr).version == 6 else "ipv4"
