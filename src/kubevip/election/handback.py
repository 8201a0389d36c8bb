"""Our own Lease after a conflict: recognising a write of ours that timed out but landed, and handing
the Lease back on shutdown so peers take over within one retry instead of at expiry.
"""

from __future__ import annotations

import logging
import time

from kubevip.election.leaseapi import Conflict, LeaseApi
from kubevip.election.record import LeaseRecord, released_body

log = logging.getLogger(__name__)


async def still_ours(api: LeaseApi, mine: LeaseRecord, identity: str, limit: float) -> LeaseRecord | None:
    """The current version if this process still holds it (same holder and acquireTime, so the newer
    version is a write of ours whose answer we never got), else None.
    """
    current = await api.get(mine.namespace, mine.name, limit=limit)
    if current is None or current.holder != identity or current.acquire_time != mine.acquire_time:
        return None
    return current


async def hand_back(api: LeaseApi, mine: LeaseRecord, identity: str, limit: float) -> bool:
    """Clear the holder of `mine`; True if released. Transient API errors propagate to the caller.

    A renewal cancelled in flight may still have landed: on conflict, re-read once and release the newer
    version if it is still ours.
    """
    for attempt in range(2):
        try:
            await api.replace(released_body(mine, time.time()), limit=limit)
        except Conflict:
            if attempt:
                break
            current = await still_ours(api, mine, identity, limit)
            if current is None:
                break
            mine = current
            continue
        log.info("lease %s/%s released by %s", mine.namespace, mine.name, identity)
        return True
    log.info("lease %s/%s changed hands before release; nothing to release", mine.namespace, mine.name)
    return False
