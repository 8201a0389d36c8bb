"""Observed-time expiry: a peer's Lease counts as expired only after we have watched the same version
of it, unchanged, for its full duration on OUR monotonic clock (never by comparing wall clocks).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Observation:
    """A Lease version and the local monotonic time we first saw it."""

    resource_version: str
    first_seen: float


def observe(
    previous: Observation | None, resource_version: str, now: float, not_before: float = 0.0
) -> Observation:
    """Keep the first-seen time while the version is unchanged; a new version restarts the clock.

    `not_before` lets a node that was itself cut off restart every clock from when it could see again.
    """
    if previous is not None and previous.resource_version == resource_version:
        return Observation(resource_version, max(previous.first_seen, not_before))
    return Observation(resource_version, max(now, not_before))


def expires_at(observation: Observation, duration: float) -> float:
    """Local monotonic time from which the holder has, by its own promise, stopped announcing."""
    return observation.first_seen + duration
