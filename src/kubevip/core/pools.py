"""Parses kube-vip cloud-provider's ConfigMap into address pools per namespace and family (in core: the
agent's address policy (`vip_allowed_from_pools`) and `kubevip ipam` read the same pools).

Pure: a dict of strings in, a frozen `PoolConfig` out. A bad entry never raises; it becomes a
`PoolError` naming the key, and the rest of the ConfigMap keeps working.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from kubevip.core.views import IPAddress, IPFamily

GLOBAL = "global"
# kube-vip's provider looks the keys up in this order; the first key that has the family wins.
LOOKUP_ORDER = ("cidr-{ns}", "cidr-global", "range-{ns}", "range-global")
_POOL_PREFIXES = ("cidr-", "range-")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off", ""}
_MAX_IFNAME = 15  # IFNAMSIZ - 1
_UNKNOWN_KEY = (
    "not a key kubevip knows (cidr-*, range-*, allow-share-*, interface-*, search-order, "
    "skip-end-ips-in-cidr); ignored"
)


@dataclass(frozen=True)
class Block:
    """An inclusive range of addresses of one family, as integers (fast to scan and compare)."""

    first: int
    last: int

    @property
    def size(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class Pool:
    """The addresses of one family under one ConfigMap key; blocks sorted, merged, non-overlapping."""

    key: str
    family: IPFamily
    blocks: tuple[Block, ...]

    def __contains__(self, addr: object) -> bool:
        if not isinstance(addr, ipaddress.IPv4Address | ipaddress.IPv6Address):
            return False
        if IPFamily.of(addr) is not self.family:
            return False
        n = int(addr)
        i = bisect.bisect_right(self.blocks, n, key=lambda b: b.first) - 1
        return i >= 0 and self.blocks[i].first <= n <= self.blocks[i].last

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blocks)

    def describe(self) -> str:
        """`first-last` of each block, comma separated, for Events and `lab status`."""
        return ",".join(f"{_addr(self.family, b.first)}-{_addr(self.family, b.last)}" for b in self.blocks)


@dataclass(frozen=True)
class PoolError:
    """One problem in the ConfigMap; `key` is the ConfigMap key to fix."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"key {self.key!r}: {self.message}"


@dataclass(frozen=True)
class Lookup:
    """Where a namespace's addresses of one family come from: a pool, or why there is none."""

    pool: Pool | None
    # Set when the key that should have answered is malformed: we stop there rather than fall
    # through to a wider pool the operator did not mean for this namespace.
    malformed_key: str | None = None


@dataclass(frozen=True)
class PoolConfig:
    """Everything the allocator needs from the ConfigMap."""

    pools: Mapping[str, Mapping[IPFamily, Pool]] = field(default_factory=dict)
    broken_keys: frozenset[str] = frozenset()
    allow_share: Mapping[str, bool] = field(default_factory=dict)
    interfaces: Mapping[str, str] = field(default_factory=dict)
    descending: bool = False
    skip_end_ips_in_cidr: bool = False
    errors: tuple[PoolError, ...] = ()

    def lookup(self, namespace: str, family: IPFamily) -> Lookup:
        """The pool for `family` in `namespace`, in kube-vip's key order, per family."""
        for pattern in LOOKUP_ORDER:
            key = pattern.format(ns=namespace)
            by_family = self.pools.get(key)
            if by_family is not None and family in by_family:
                return Lookup(by_family[family])
            if key in self.broken_keys:
                return Lookup(None, malformed_key=key)
        return Lookup(None)

    def share_allowed(self, namespace: str) -> bool:
        """`allow-share-<ns>`, else `allow-share-global`, else False."""
        if namespace in self.allow_share:
            return self.allow_share[namespace]
        return self.allow_share.get(GLOBAL, False)

    def interface_for(self, namespace: str) -> str | None:
        """`interface-<ns>`, else `interface-global`, else None."""
        return self.interfaces.get(namespace) or self.interfaces.get(GLOBAL)

    def all_pools(self) -> Iterator[Pool]:
        for by_family in self.pools.values():
            yield from by_family.values()

    def in_any_pool(self, addr: IPAddress) -> bool:
        return any(addr in p for p in self.all_pools())


def _addr(family: IPFamily, n: int) -> IPAddress:
    return ipaddress.IPv4Address(n) if family is IPFamily.IPV4 else ipaddress.IPv6Address(n)


def _merge(blocks: list[Block]) -> tuple[Block, ...]:
    out: list[Block] = []
    for b in sorted(blocks, key=lambda b: (b.first, b.last)):
        if out and b.first <= out[-1].last + 1:
            if b.last > out[-1].last:
                out[-1] = Block(out[-1].first, b.last)
        else:
            out.append(b)
    return tuple(out)


def _parse_bool(key: str, value: str, errors: list[PoolError]) -> bool | None:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    errors.append(PoolError(key, f"{value!r} is not a boolean; write true or false"))
    return None


def _parse_cidr(
    key: str, entry: str, skip_ends: bool, errors: list[PoolError],
) -> tuple[IPFamily, Block] | None:
    try:
        # Host bits are allowed (kube-vip parses with Go's net.ParseCIDR, which masks them).
        net = ipaddress.ip_network(entry, strict=False)
    except ValueError:
        errors.append(PoolError(key, f"{entry!r} is not a CIDR; write e.g. 192.0.2.0/24 or 2001:db8::/120"))
        return None
    first, last = int(net.network_address), int(net.broadcast_address)
    # Skipping both ends of a /31, /32, /127 or /128 would leave nothing: such tiny CIDRs stay whole.
    if skip_ends and last - first >= 2:
        first, last = first + 1, last - 1
    return IPFamily.of(net.network_address), Block(first, last)


def _parse_range(key: str, entry: str, errors: list[PoolError]) -> tuple[IPFamily, Block] | None:
    parts = entry.split("-")
    if len(parts) != 2:
        errors.append(PoolError(key, f"{entry!r} is not a range; write first-last, e.g. 192.0.2.1-192.0.2.9"))
        return None
    try:
        a, b = ipaddress.ip_address(parts[0].strip()), ipaddress.ip_address(parts[1].strip())
    except ValueError:
        errors.append(PoolError(key, f"{entry!r}: both ends must be IP addresses"))
        return None
    if a.version != b.version:
        errors.append(PoolError(key, f"{entry!r}: both ends must be of the same family"))
        return None
    if int(a) > int(b):
        errors.append(PoolError(key, f"{entry!r}: the first address is above the last"))
        return None
    return IPFamily.of(a), Block(int(a), int(b))


def _parse_pool_key(key: str, value: str, skip_ends: bool, errors: list[PoolError]) -> dict[IPFamily, Pool]:
    per_family: dict[IPFamily, list[Block]] = {}
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        parsed = (
            _parse_cidr(key, entry, skip_ends, errors)
            if key.startswith("cidr-")
            else _parse_range(key, entry, errors)
        )
        if parsed is not None:
            per_family.setdefault(parsed[0], []).append(parsed[1])
    return {f: Pool(key, f, _merge(blocks)) for f, blocks in per_family.items()}


def parse_configmap(data: Mapping[str, str] | None) -> PoolConfig:
    """Turn the ConfigMap's `data` into a `PoolConfig`; problems land in `.errors`, never raise."""
    data = data or {}
    errors: list[PoolError] = []
    skip_ends = bool(_parse_bool("skip-end-ips-in-cidr", data.get("skip-end-ips-in-cidr", ""), errors))
    descending = False
    order = data.get("search-order", "").strip().lower()
    if order == "desc":
        descending = True
    elif order not in ("", "asc"):
        errors.append(PoolError("search-order", f"{order!r} is not a search order; write desc or asc"))

    pools: dict[str, dict[IPFamily, Pool]] = {}
    broken: set[str] = set()
    allow_share: dict[str, bool] = {}
    interfaces: dict[str, str] = {}
    for key in sorted(data):
        value = data[key]
        if key in ("skip-end-ips-in-cidr", "search-order"):
            continue
        if key.startswith(_POOL_PREFIXES):
            before = len(errors)
            by_family = _parse_pool_key(key, value, skip_ends, errors)
            if len(errors) > before or not by_family:
                if not by_family and len(errors) == before:
                    errors.append(PoolError(key, "holds no address; remove the key or add CIDRs/ranges"))
                broken.add(key)
            if by_family:
                pools[key] = by_family
        elif key.startswith("allow-share-"):
            flag = _parse_bool(key, value, errors)
            if flag is not None:
                allow_share[key.removeprefix("allow-share-")] = flag
        elif key.startswith("interface-"):
            name = value.strip()
            if not name or len(name) > _MAX_IFNAME or any(c in name for c in "/ \t:"):
                errors.append(PoolError(key, f"{value!r}: not an interface name (1-15 chars, no / : space)"))
            else:
                interfaces[key.removeprefix("interface-")] = name
        else:
            errors.append(PoolError(key, _UNKNOWN_KEY))
    return PoolConfig(
        pools=pools,
        broken_keys=frozenset(broken),
        allow_share=allow_share,
        interfaces=interfaces,
        descending=descending,
        skip_end_ips_in_cidr=skip_ends,
        errors=tuple(errors),
    )
