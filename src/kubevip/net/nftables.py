"""The agent's packet rules: one nftables table of ours (`inet kubevip` by default), replaced atomically.

Why the `nft` binary (Debian package `nftables`) fed a script on stdin: one `nft -f -` run is one netlink
transaction, so the table is swapped as a whole (never half old, half new), and the kernel checks the
whole ruleset before it commits anything. The script first declares the table, then deletes it, then
builds it again: that is idempotent whether or not the table exists, and nothing outside the table is
ever named, so other tables (kube-proxy's, firewalld's, another agent's) are never touched.

Rules come from core/egress.py as data; this module only renders and applies them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable

from kubevip.core.egress import GuardRule, PacketRules, SnatRule
from kubevip.core.views import IPAddress, IPFamily
from kubevip.errors import NetworkError
from kubevip.ip import IPNetwork
from kubevip.net.namespace import OWN, Netns

DEFAULT_TABLE = "kubevip"
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


def valid_table(name: str) -> str:
    if not _TABLE_NAME.match(name):
        raise NetworkError(f"nftables table name {name!r}: use a letter, then up to 31 of A-Za-z0-9_-")
    return name


def _set(items: Iterable[object]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def _nf(family: IPFamily) -> str:
    return "ip" if family == IPFamily.IPV4 else "ip6"


def _addr_type(family: IPFamily) -> str:
    return "ipv4_addr" if family == IPFamily.IPV4 else "ipv6_addr"


def _ports(ports: Iterable[tuple[str, int]]) -> str:
    return _set(f"{p} . {n}" for p, n in ports)


_Profile = tuple[IPFamily, tuple[IPNetwork, ...], tuple[IPNetwork, ...] | None, tuple[tuple[str, int], ...]]


def _egress(rules: Iterable[SnatRule]) -> tuple[list[str], list[str]]:
    """Maps and rules for SNAT. Rules with the same (family, exemptions, allowed networks, ports) share
    one rule and one map (pod address -> VIP), so a thousand Services cost a handful of rules and one
    transaction of map elements instead of thousands of rules with their anonymous sets (that took the
    kernel seconds to load). A source missing from the map does not match the rule (nft: a lookup miss
    ends the rule), so other pods leave untranslated."""
    groups: dict[_Profile, dict[IPAddress, IPAddress]] = {}
    for r in rules:
        m = groups.setdefault((r.family, r.exempt, r.allowed, r.ports), {})
        for src in r.sources:
            m.setdefault(src, r.vip)  # core gives each source one VIP; the first stays regardless
    maps: list[str] = []
    chain: list[str] = []
    for n, (key, m) in enumerate(sorted(groups.items(), key=lambda kv: repr(kv[0]))):
        family, exempt, allowed, ports = key
        ip, t = _nf(family), _addr_type(family)
        name = f"egress{4 if family == IPFamily.IPV4 else 6}_{n}"
        elements = ", ".join(f"{src} : {vip}" for src, vip in sorted(m.items(), key=lambda kv: int(kv[0])))
        maps.append(f"  map {name} {{ type {t} : {t}; elements = {{ {elements} }}; }}")
        match: list[str] = []
        if allowed is not None:
            match.append(f"{ip} daddr {_set(allowed)}")
        if exempt:
            match.append(f"{ip} daddr != {_set(exempt)}")
        if ports:
            match.append(f"meta l4proto . th dport {_ports(ports)}")
        chain.append(" ".join([*match, f"snat {ip} to {ip} saddr map @{name}"]))
    return maps, chain


def _guards(guards: Iterable[GuardRule]) -> tuple[list[str], list[str]]:
    """Sets and rules for Service security: per family, the guarded VIPs and their (VIP, protocol, port)
    triples; four rules per family however many VIPs."""
    guards = list(guards)
    sets: list[str] = []
    chain: list[str] = []
    for family in IPFamily:
        mine = [g for g in guards if IPFamily.of(g.vip) == family]
        if not mine:
            continue
        v = 4 if family == IPFamily.IPV4 else 6
        ip, t, icmp = _nf(family), _addr_type(family), ("icmp" if v == 4 else "ipv6-icmp")
        vips = ", ".join(str(g.vip) for g in mine)
        triples = ", ".join(f"{g.vip} . {p} . {n}" for g in mine for p, n in g.ports)
        sets.append(f"  set guarded{v} {{ type {t}; elements = {{ {vips} }}; }}")
        sets.append(f"  set open{v} {{ type {t} . inet_proto . inet_service; elements = {{ {triples} }}; }}")
        chain += [
            f"{ip} daddr . meta l4proto . th dport @open{v} accept",
            # Replies to what the node itself started, and ICMP (ping, path MTU, and for IPv6 the
            # neighbour discovery that keeps the VIP reachable) stay allowed.
            f"{ip} daddr @guarded{v} ct state established,related accept",
            f"{ip} daddr @guarded{v} meta l4proto {icmp} accept",
            f"{ip} daddr @guarded{v} drop",
        ]
    return sets, chain


def render(rules: PacketRules, table: str = DEFAULT_TABLE) -> str:
    """The `nft -f` script that replaces our table with exactly `rules` (or removes it when empty)."""
    valid_table(table)
    lines = [f"add table inet {table}", f"delete table inet {table}"]
    if rules.empty:
        return "\n".join(lines) + "\n"
    maps, egress = _egress(rules.snat)
    sets, guards = _guards(rules.guards)
    lines.append(f"table inet {table} {{")
    lines += maps + sets
    if egress:
        # srcnat priority, like kube-proxy's masquerade: after routing picked the way out.
        lines += ["  chain egress {", "    type nat hook postrouting priority srcnat; policy accept;"]
        lines += [f"    {line}" for line in egress]
        lines.append("  }")
    if guards:
        lines += ["  chain service-security {", "    type filter hook input priority filter; policy accept;"]
        lines += [f"    {line}" for line in guards]
        lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


class PacketRuleTable:
    """Our table in one network namespace: `apply` replaces it (skipped when unchanged), `remove` drops it."""

    def __init__(self, table: str = DEFAULT_TABLE, ns: Netns = OWN, nft: str | None = None) -> None:
        self.table = valid_table(table)
        self.ns = ns
        self._nft = nft
        self.applied: str | None = None  # the last script the kernel accepted (None: unknown)

    @property
    def nft(self) -> str:
        if self._nft is None:
            found = shutil.which("nft")
            if found is None:
                raise NetworkError("nft not found: install the nftables package (hack/prereqs.sh, the image)")
            self._nft = found
        return self._nft

    def available(self) -> bool:
        try:
            return bool(self.nft)
        except NetworkError:
            return False

    def _run(self, argv: list[str], script: str | None = None) -> subprocess.CompletedProcess[str]:
        prefix = ["ip", "netns", "exec", self.ns.name] if self.ns.name else []
        try:
            return subprocess.run([*prefix, *argv], input=script, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise NetworkError(f"{' '.join(argv)}: {exc}") from exc

    def apply(self, rules: PacketRules) -> bool:
        """Replace the table with `rules` in one transaction; False when it already held them."""
        script = render(rules, self.table)
        if script == self.applied:
            return False
        res = self._run([self.nft, "-f", "-"], script)
        if res.returncode != 0:
            self.applied = None
            raise NetworkError(f"nft rejected the rules of table inet {self.table}: {res.stderr.strip()}")
        self.applied = script
        return True

    def remove(self) -> None:
        """Drop our table if it exists (start-up and shutdown); nothing else is touched."""
        self.applied = None
        self.apply(PacketRules())

    def present(self) -> bool:
        """Whether our table exists (cheap: table names only). Someone may have flushed the ruleset."""
        res = self._run([self.nft, "list", "tables", "inet"])
        if res.returncode != 0:
            raise NetworkError(f"nft list tables: {res.stderr.strip()}")
        return f"table inet {self.table}" in res.stdout.splitlines()

    def listing(self) -> str:
        """`nft list table inet <ours>` ("" when it does not exist): for tests and `explain`."""
        res = self._run([self.nft, "list", "table", "inet", self.table])
        return res.stdout if res.returncode == 0 else ""


__all__ = ["DEFAULT_TABLE", "IPAddress", "IPNetwork", "PacketRuleTable", "render", "valid_table"]
