"""The allocation table: which Service holds which address, and the pure decision of what to give next.

No I/O (an import-linter contract enforces it). The controller feeds it what the cluster says
(`hold`, `release`) and asks it what a Service should have (`ensure`); it never hands one address to
two Services unless both namespaces allow sharing and their ports do not overlap.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from kubevip.core.policy import DEFAULT_POLICY, AddressPolicy, Refusal, refusal
from kubevip.core.reasons import Reason
from kubevip.core.views import IPAddress, IPFamily
from kubevip.ipam.pools import Block, PoolConfig

# Stable reason codes (Events, logs, docs/ipam.md). Add new ones, never rename.
NO_POOL = Reason.NO_POOL
POOL_MALFORMED = Reason.POOL_MALFORMED
POOL_EXHAUSTED = Reason.POOL_EXHAUSTED
REQUIRE_DUAL_STACK_UNMET = Reason.REQUIRE_DUAL_STACK_UNMET
OUTSIDE_EVERY_POOL = Reason.OUTSIDE_EVERY_POOL
ADDRESS_CONFLICT = Reason.ADDRESS_CONFLICT
# The address policy (kubevip.core.policy) refuses an address the Service holds: the agents will not
# announce it. Ours move to another address; a user's is left alone.
ADDRESS_REFUSED = Reason.ADDRESS_REFUSED
# A user wrote addresses IPAM cannot parse: the Service is left alone (never overwritten).
INVALID_ADDRESS = Reason.INVALID_ADDRESS
REASONS = (
    NO_POOL, POOL_MALFORMED, POOL_EXHAUSTED, REQUIRE_DUAL_STACK_UNMET, OUTSIDE_EVERY_POOL, ADDRESS_CONFLICT,
    ADDRESS_REFUSED, INVALID_ADDRESS,
)

ServiceKey = tuple[str, str]  # (namespace, name)
PortKey = tuple[str, int]  # (protocol, port)


@dataclass(frozen=True)
class Request:
    """What a Service asks for: its families (primary first) and whether it needs all of them."""

    namespace: str
    name: str
    families: tuple[IPFamily, ...]
    require_all: bool = False
    ports: frozenset[PortKey] = frozenset()

    @property
    def key(self) -> ServiceKey:
        return (self.namespace, self.name)


@dataclass(frozen=True)
class Problem:
    """Why a Service lacks (or should not have) an address of a family; `reason` is a stable code."""

    reason: str
    family: IPFamily | None
    message: str


@dataclass(frozen=True)
class Outcome:
    """The decision for one Service: its addresses (in requested family order) and what changed."""

    addresses: tuple[IPAddress, ...]
    added: tuple[IPAddress, ...]
    released: tuple[IPAddress, ...]
    problems: tuple[Problem, ...]
    # True when every requested family has an address: nothing to retry when addresses free up.
    complete: bool
    # Later holders of a shared address whose ports now overlap this Service's: ensure them again (they move).
    displaced: tuple[ServiceKey, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.added or self.released)


@dataclass(frozen=True)
class _Holding:
    addresses: tuple[IPAddress, ...]
    ports: frozenset[PortKey]
    owned: bool  # allocated by us (our label) rather than set by a user or another tool


@dataclass
class _Scan:
    mark: int
    holes: list[int]


def _make(version: int, n: int) -> IPAddress:
    return ipaddress.IPv4Address(n) if version == 4 else ipaddress.IPv6Address(n)


def _version(family: IPFamily) -> int:
    return 4 if family is IPFamily.IPV4 else 6


def skipped(version: int, n: int) -> bool:
    """IPv4 addresses ending in .0 or .255 are never handed out (kube-vip does the same)."""
    return version == 4 and (n & 0xFF) in (0, 255)


class Allocator:
    """The in-memory allocation table of the whole cluster (every namespace, every pool)."""

    def __init__(self, config: PoolConfig | None = None) -> None:
        self._config = config or PoolConfig()
        self._held: dict[ServiceKey, _Holding] = {}
        # Holders in the order they took the address: on a port clash the earlier one keeps it.
        self._holders: dict[IPAddress, dict[ServiceKey, None]] = {}
        self._used: dict[int, set[int]] = {4: set(), 6: set()}
        # Scan state per (version, first, last, descending): a watermark (every address between the
        # block's start and it was seen used or skipped) and a heap of addresses freed behind it, so the
        # next free address is found without walking the used ones. Dropped on reconfiguration.
        self._scans: dict[tuple[int, int, int, bool], _Scan] = {}
        self._policy = DEFAULT_POLICY

    # ----- what the cluster says -------------------------------------------------------------------

    @property
    def config(self) -> PoolConfig:
        return self._config

    def set_config(self, config: PoolConfig) -> None:
        """Switch to a new ConfigMap; existing holdings stay (a Service keeps its address)."""
        self._config = config
        self._scans.clear()

    @property
    def policy(self) -> AddressPolicy:
        return self._policy

    def set_policy(self, policy: AddressPolicy) -> None:
        """Switch to a new address policy; scans start over (an address skipped before may be free now)."""
        self._policy = policy
        self._scans.clear()

    def refused(self, a: IPAddress, namespace: str) -> Refusal | None:
        """Why the address policy refuses `a` for `namespace`, or None."""
        return refusal(self._policy, a, namespace)

    def hold(
        self, key: ServiceKey, addresses: Iterable[IPAddress], ports: frozenset[PortKey] = frozenset(),
        *, owned: bool,
    ) -> tuple[Problem, ...]:
        """Record that `key` holds exactly `addresses` (from its annotation); returns conflicts found."""
        addrs = tuple(dict.fromkeys(addresses))
        current = self._held.get(key)
        if current is None or current.addresses != addrs:
            # Unchanged addresses keep their place among holders (the earlier holder wins a port clash).
            self.release(key)
            for a in addrs:
                self._add(key, a)
        self._held[key] = _Holding(addrs, ports, owned)
        problems: list[Problem] = []
        for a in addrs:
            others = [o for o in self._holders.get(a, {}) if o != key]
            if others and not self._can_share(key[0], ports, a, exclude=key):
                names = ", ".join(sorted(f"{ns}/{n}" for ns, n in others))
                problems.append(Problem(ADDRESS_CONFLICT, IPFamily.of(a), f"{a} is also held by {names}"))
        return tuple(problems)

    def release(self, key: ServiceKey) -> tuple[IPAddress, ...]:
        """Forget everything `key` holds (Service deleted, no longer ours); returns freed addresses."""
        holding = self._held.pop(key, None)
        if holding is None:
            return ()
        for a in holding.addresses:
            self._remove(key, a)
        return holding.addresses

    def holding(self, key: ServiceKey) -> tuple[IPAddress, ...]:
        h = self._held.get(key)
        return h.addresses if h else ()

    def is_owned(self, key: ServiceKey) -> bool:
        h = self._held.get(key)
        return bool(h and h.owned)

    def holders(self, addr: IPAddress) -> frozenset[ServiceKey]:
        return frozenset(self._holders.get(addr, ()))

    def services(self) -> frozenset[ServiceKey]:
        return frozenset(self._held)

    def in_use(self) -> int:
        return len(self._holders)

    # ----- the decision ----------------------------------------------------------------------------

    def ensure(self, request: Request) -> Outcome:
        """Give `request` one address per requested family, keeping what it has; record the result."""
        key = request.key
        current = self._held.get(key)
        held: dict[IPFamily, IPAddress] = {}
        extra: list[IPAddress] = []
        for a in current.addresses if current else ():
            fam = IPFamily.of(a)
            if fam in held:
                extra.append(a)  # a second address of a family (hand-edited): not ours to keep
            else:
                held[fam] = a

        problems: list[Problem] = []
        moved = [a for a in held.values() if self._clashes(key, request.ports, a)]
        for a in moved:
            # Its ports now overlap those of an earlier holder of the shared address: traffic to one of
            # them would break, so the newcomer moves (the only case where a Service's address changes).
            del held[IPFamily.of(a)]
            extra.append(a)
            self._remove(key, a)
        for fam, a in list(held.items()):
            refused = self.refused(a, request.namespace)
            if refused is not None:
                # The policy changed under an address we allocated (a Node took it, an allow-list shrank):
                # the agents will not announce it, so the Service gets another one.
                del held[fam]
                extra.append(a)
                problems.append(Problem(
                    ADDRESS_REFUSED, fam, f"{a} is refused by the address policy ({refused.reason}: "
                    f"{refused.rule}); allocating another",
                ))
                continue
            if fam in request.families and not self._config.in_any_pool(a):
                problems.append(Problem(
                    OUTSIDE_EVERY_POOL, fam,
                    f"{a} is outside every pool of the ConfigMap; kept so the Service does not lose it",
                ))

        found: dict[IPFamily, IPAddress] = {}
        missing = [f for f in request.families if f not in held]
        for fam in missing:
            got = self._find(request, fam)
            if isinstance(got, Problem):
                problems.append(got)
            else:
                found[fam] = got
                self._add(key, got)  # taken at once so the next family's search cannot pick it
        if request.require_all and len(found) < len(missing):
            for a in found.values():
                self._remove(key, a)
            found = {}
            problems.append(Problem(
                REQUIRE_DUAL_STACK_UNMET, None,
                "RequireDualStack needs an address of every family; none allocated until all are free",
            ))

        released = tuple(a for f, a in held.items() if f not in request.families) + tuple(extra)
        for a in released:
            if a not in moved:
                self._remove(key, a)
        addresses = tuple(held.get(f) or found[f] for f in request.families if f in held or f in found)
        if addresses or current is not None:
            self._held[key] = _Holding(addresses, request.ports, True)
        displaced = tuple(dict.fromkeys(
            other for a in addresses for other in self._holders.get(a, ())
            if other != key and self._clashes(other, self._held[other].ports, a)
        ))
        return Outcome(
            addresses=addresses,
            added=tuple(found[f] for f in request.families if f in found),
            released=released,
            problems=tuple(problems),
            complete=len(addresses) == len(request.families),
            displaced=displaced,
        )

    # ----- internals -------------------------------------------------------------------------------

    def _add(self, key: ServiceKey, a: IPAddress) -> None:
        self._holders.setdefault(a, {})[key] = None
        self._used[a.version].add(int(a))

    def _remove(self, key: ServiceKey, a: IPAddress) -> None:
        keys = self._holders.get(a)
        if keys is None:
            return
        keys.pop(key, None)
        if keys:
            return
        del self._holders[a]
        n = int(a)
        self._used[a.version].discard(n)
        for (version, first, last, desc), scan in self._scans.items():
            behind = n > scan.mark if desc else n < scan.mark
            if version == a.version and first <= n <= last and behind:
                heapq.heappush(scan.holes, -n if desc else n)

    def _clashes(self, key: ServiceKey, ports: frozenset[PortKey], a: IPAddress) -> bool:
        for other in self._holders.get(a, ()):
            if other == key:
                return False
            h = self._held.get(other)
            if h is not None and ports & h.ports:
                return True
        return False

    def _can_share(
        self, namespace: str, ports: frozenset[PortKey], a: IPAddress, exclude: ServiceKey | None = None,
    ) -> bool:
        if not ports or not self._config.share_allowed(namespace):
            return False
        for other in self._holders.get(a, ()):
            if other == exclude:
                continue
            h = self._held.get(other)
            if h is None or not self._config.share_allowed(other[0]) or ports & h.ports:
                return False
        return True

    def _find(self, request: Request, family: IPFamily) -> IPAddress | Problem:
        look = self._config.lookup(request.namespace, family)
        if look.pool is None:
            if look.malformed_key:
                return Problem(POOL_MALFORMED, family, f"ConfigMap key {look.malformed_key!r} is malformed "
                               f"and has no {family} entry")
            return Problem(NO_POOL, family, f"no {family} pool for namespace {request.namespace!r} "
                           f"(keys looked up: cidr-{request.namespace}, cidr-global, "
                           f"range-{request.namespace}, range-global)")
        version = _version(family)
        desc = self._config.descending
        blocks = reversed(look.pool.blocks) if desc else iter(look.pool.blocks)
        share = self._config.share_allowed(request.namespace) and bool(request.ports)
        for block in blocks:
            if share:
                n = self._scan_shared(request, version, block, desc)
            else:
                n = self._scan(version, block, desc, request.namespace)
            if n is not None:
                return _make(version, n)
        return Problem(POOL_EXHAUSTED, family, f"pool {look.pool.key!r} has no free {family} address "
                       f"({look.pool.describe()})")

    def _usable(self, version: int, n: int, namespace: str) -> bool:
        return not skipped(version, n) and self.refused(_make(version, n), namespace) is None

    def _scan(self, version: int, block: Block, desc: bool, namespace: str = "") -> int | None:
        used = self._used[version]
        hk = (version, block.first, block.last, desc)
        scan = self._scans.get(hk)
        if scan is None:
            scan = self._scans[hk] = _Scan(block.last if desc else block.first, [])
        while scan.holes:
            n = heapq.heappop(scan.holes)
            n = -n if desc else n
            if n not in used and self._usable(version, n, namespace):  # else taken again since freed
                return n
        step = -1 if desc else 1
        end = block.first - 1 if desc else block.last + 1
        n = scan.mark
        while n != end:
            if n not in used and self._usable(version, n, namespace):
                scan.mark = n + step
                return n
            n += step
        scan.mark = n
        return None

    def _scan_shared(self, request: Request, version: int, block: Block, desc: bool) -> int | None:
        # Sharing may reuse a held address, so the hint (which skips held ones) cannot be used here.
        used = self._used[version]
        rng = range(block.last, block.first - 1, -1) if desc else range(block.first, block.last + 1)
        for n in rng:
            if not self._usable(version, n, request.namespace):
                continue
            if n not in used or self._can_share(request.namespace, request.ports, _make(version, n)):
                return n
        return None
