"""BGP communities (RFC 1997) and large communities (RFC 8092): parsing and canonical text."""

from __future__ import annotations

import re
from dataclasses import dataclass

_U16 = 0xFFFF
_U32 = 0xFFFF_FFFF

# Well-known names an operator may write instead of numbers (RFC 1997, RFC 3765, RFC 8326).
WELL_KNOWN: dict[str, tuple[int, int]] = {
    "no-export": (0xFFFF, 0xFF01),
    "no-advertise": (0xFFFF, 0xFF02),
    "no-export-subconfed": (0xFFFF, 0xFF03),
    "no-peer": (0xFFFF, 0xFF04),
    "graceful-shutdown": (0xFFFF, 0x0000),
}

_SPLIT = re.compile(r"[,\s]+")


@dataclass(frozen=True, order=True)
class Community:
    """A standard community `high:low`, each half 0..65535."""

    high: int
    low: int

    def __post_init__(self) -> None:
        if not (0 <= self.high <= _U16 and 0 <= self.low <= _U16):
            raise ValueError(f"community {self.high}:{self.low}: each half must be 0..65535")

    def __str__(self) -> str:
        return f"{self.high}:{self.low}"


@dataclass(frozen=True, order=True)
class LargeCommunity:
    """A large community `global:local1:local2`, each part 0..4294967295."""

    global_admin: int
    local1: int
    local2: int

    def __post_init__(self) -> None:
        if not all(0 <= v <= _U32 for v in (self.global_admin, self.local1, self.local2)):
            raise ValueError(f"large community {self}: each part must be 0..4294967295")

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"


def _ints(token: str, parts: int, what: str, example: str) -> list[int]:
    pieces = token.split(":")
    if len(pieces) != parts or not all(p.isdigit() for p in pieces):
        raise ValueError(f"{token!r} is not a {what} (expected e.g. {example})")
    return [int(p) for p in pieces]


def parse_communities(text: str) -> tuple[Community, ...]:
    """Parse a comma or space separated list like `65000:100,no-export`; sorted, duplicates dropped."""
    out: set[Community] = set()
    for token in _SPLIT.split(text.strip()):
        if not token:
            continue
        known = WELL_KNOWN.get(token.lower())
        if known is not None:
            out.add(Community(*known))
            continue
        high, low = _ints(token, 2, "community", "65000:100 or no-export")
        out.add(Community(high, low))
    return tuple(sorted(out))


def parse_large_communities(text: str) -> tuple[LargeCommunity, ...]:
    """Parse a comma or space separated list like `65000:1:2`; sorted, duplicates dropped."""
    out: set[LargeCommunity] = set()
    for token in _SPLIT.split(text.strip()):
        if token:
            g, a, b = _ints(token, 3, "large community", "65000:1:2")
            out.add(LargeCommunity(g, a, b))
    return tuple(sorted(out))
