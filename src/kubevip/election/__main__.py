"""A standalone elector process for tests, benchmarks and demos: prints one JSON line per change.

`python -m kubevip.election --kubeconfig K --identity node-a --lease plndr-cp-lock` (lease mode), or
`--mode scalable --unit u1 --unit u2`. `--nodes N` runs N identities (`<identity>-0` ..) in this one
process over one client: 100+ nodes' worth of electors against one API server, cheaply (benchmarks).
Lines: {"event": "ready"|"started"|"stopped"|"released", "unit", "node", "mono", "wall"}; SIGTERM
releases (withdraw first, then hand the Lease back) and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

from kubevip.election.elector import LeaseElector
from kubevip.election.leaseapi import LeaseApi
from kubevip.election.scalable import ScalableElector
from kubevip.election.timings import Timings
from kubevip.kube.client import access, connect
from kubevip.kube.rest import RestClient
from kubevip.tasks import TaskGroupGuard, spawn


def emit(event: str, unit: str, node: str) -> None:
    line = {"event": event, "unit": unit, "node": node, "mono": time.monotonic(), "wall": time.time()}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Timings()
    p = argparse.ArgumentParser(prog="python -m kubevip.election", description=__doc__)
    p.add_argument("--kubeconfig", required=True)
    p.add_argument("--namespace", default="kube-system")
    p.add_argument("--identity", required=True)
    p.add_argument("--mode", choices=("lease", "scalable"), default="lease")
    p.add_argument("--lease", action="append", default=[], help="lease mode: a Lease name (repeatable)")
    p.add_argument("--unit", action="append", default=[], help="scalable mode: a unit key (repeatable)")
    p.add_argument(
        "--count", type=int, default=0, help="also add names/units from --template, i = 0..count-1"
    )
    p.add_argument("--template", default="kubevip-svc-{i}")
    p.add_argument("--lease-duration", type=float, default=d.lease_duration)
    p.add_argument("--renew-deadline", type=float, default=d.renew_deadline)
    p.add_argument("--retry-period", type=float, default=d.retry_period)
    p.add_argument("--skew-margin", type=float, default=d.skew_margin)
    p.add_argument("--liveness-period", type=float, default=None,
                   help="scalable mode: seconds between liveness renewals (default: the retry period)")
    p.add_argument("--quiet", action="store_true", help="print only ready/released (benchmarks)")
    p.add_argument("--nodes", type=int, default=0,
                   help="run this many identities <identity>-0 .. in one process, sharing one client")
    return p.parse_args(argv)


async def amain(args: argparse.Namespace) -> int:
    timings = Timings(
        args.lease_duration, args.renew_deadline, args.retry_period, args.skew_margin, args.liveness_period
    ).validate()
    names = list(args.lease if args.mode == "lease" else args.unit)
    names += [args.template.format(i=i) for i in range(args.count)]
    identities = [f"{args.identity}-{i}" for i in range(args.nodes)] if args.nodes else [args.identity]
    # Every identity keeps a watch open (one connection each): N identities need more than the default
    # pool, or a holder's renewal would queue behind other identities' connections.
    api = RestClient(access(args.kubeconfig), pool_size=0) if args.nodes else await connect(args.kubeconfig)
    leases = LeaseApi(api, request_timeout=timings.renew_deadline)
    guard = TaskGroupGuard(f"elector-{args.identity}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    electors: list[LeaseElector | ScalableElector] = []
    for node in identities:
        electors += _electors(args, leases, node, names, timings)
    try:
        for el in electors:
            spawn(guard, f"elect:{el.lease_name}", el.run())
        emit("ready", "", args.identity)
        await stop.wait()
        await asyncio.gather(*(el.release() for el in electors))
        emit("released", "", args.identity)
    finally:
        await guard.close()
        await api.close()
    return 0


def _electors(
    args: argparse.Namespace, leases: LeaseApi, node: str, names: list[str], timings: Timings
) -> list[LeaseElector | ScalableElector]:
    """The electors of one identity: a LeaseElector per Lease name, or one ScalableElector."""

    def reporter(event: str, unit: str) -> Callable[[], Awaitable[None]]:
        async def cb() -> None:
            if not args.quiet:
                emit(event, unit, node)

        return cb

    async def started(unit: str) -> None:
        if not args.quiet:
            emit("started", unit, node)

    async def stopped(unit: str) -> None:
        if not args.quiet:
            emit("stopped", unit, node)

    if args.mode == "lease":
        return [
            LeaseElector(leases, args.namespace, name, node, timings, reporter("started", name),
                         reporter("stopped", name))
            for name in names
        ]
    scalable = ScalableElector(leases, args.namespace, node, timings, started, stopped)
    scalable.set_units(dict.fromkeys(names))
    return [scalable]


def main(argv: list[str] | None = None) -> int:
    # Logs go to stderr (the fleet keeps them per node); KUBEVIP_LOG_LEVEL=DEBUG shows every request.
    logging.basicConfig(
        level=os.environ.get("KUBEVIP_LOG_LEVEL", "INFO").upper(),
        format="%(created).3f %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(amain(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
