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

from kubevip.core.egress import GuardRule, IPNetwork, PacketRules, SnatRule
from kubevip.core.views import IPAddress, IPFamily
from kubevip.errors import NetworkError
from kubevip.net.namespace import OWN, Netns

DEFAULT_TABLE = "kubevip"
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
# nft's own limit on a comment is 128 bytes; a Service key is at most 63 + 1 + 253.
_COMMENT_MAX = 120


def valid_table(name: str) -> str:
    if not _TABLE_NAME.match(name):
        raise NetworkError(f"nftables table name {name!r}: use a letter, then up to 31 of A-Za-z0-9_-")
    return name


def _set(items: Iterable[object]) -> str:
    return "{ " + ", ".join(str(i) for i in items) + " }"


def _comment(text: str) -> str:
    # Service keys are DNS labels joined by "/": nothing to escape, but keep the quote out regardless.
    return '"' + text.replace('"', "")[:_COMMENT_MAX] + '"'


def _nf(family: IPFamily) -> str:
    return "ip" if family == IPFamily.IPV4 else "ip6"


def _snat_rule(r: SnatRule) -> list[str]:
    ip = _nf(r.family)
    match = [f"{ip} saddr {_set(r.sources)}"]
    if r.allowed is not None:
        match.append(f"{ip} daddr {_set(r.allowed)}")
    if r.exempt:
        match.append(f"{ip} daddr != {_set(r.exempt)}")
    tail = f"snat {ip} to {r.vip} comment {_comment(r.service)}"
    if not r.ports:
        return [" ".join([*match, tail])]
    return [" ".join([*match, f"meta l4proto . th dport {_set(f'{p} . {n}' for p, n in r.ports)}", tail])]


def _guard_rules(g: GuardRule) -> list[str]:
    ip = "ip" if g.vip.version == 4 else "ip6"
    icmp = "icmp" if g.vip.version == 4 else "ipv6-icmp"
    return [
        f"{ip} daddr {g.vip} meta l4proto . th dport {_set(f'{p} . {n}' for p, n in g.ports)} accept",
        # Replies to what the node itself started, and ICMP (ping, path MTU, and for IPv6 the neighbour
        # discovery that keeps the VIP reachable) stay allowed.
        f"{ip} daddr {g.vip} ct state established,related accept",
        f"{ip} daddr {g.vip} meta l4proto {icmp} accept",
        f"{ip} daddr {g.vip} drop",
    ]


def render(rules: PacketRules, table: str = DEFAULT_TABLE) -> str:
    """The `nft -f` script that replaces our table with exactly `rules` (or removes it when empty)."""
    valid_table(table)
    lines = [f"add table inet {table}", f"delete table inet {table}"]
    if rules.empty:
        return "\n".join(lines) + "\n"
    lines.append(f"table inet {table} {{")
    if rules.snat:
        # srcnat priority, like kube-proxy's masquerade: after routing picked the way out.
        lines += ["  chain egress {", "    type nat hook postrouting priority srcnat; policy accept;"]
        lines += [f"    {line}" for r in rules.snat for line in _snat_rule(r)]
        lines.append("  }")
    if rules.guards:
        lines += ["  chain service-security {", "    type filter hook input priority filter; policy accept;"]
        lines += [f"    {line}" for g in rules.guards for line in _guard_rules(g)]
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

    def listing(self) -> str:
        """`nft list table inet <ours>` ("" when it does not exist): for tests and `explain`."""
        res = self._run([self.nft, "list", "table", "inet", self.table])
        return res.stdout if res.returncode == 0 else ""


__all__ = ["DEFAULT_TABLE", "IPAddress", "IPNetwork", "PacketRuleTable", "render", "valid_table"]
