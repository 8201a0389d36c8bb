"""The lab router's RIB as the benchmark reads it: {VIP: next hops}, both families, one CLI call each."""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

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


def family_of(addr: str) -> str:
    return "ipv6" if ipaddress.ip_address(addr).version == 6 else "ipv4"
