"""BGP settings from kube-vip's `bgp_*` and `mpbgp_*` variables plus our communities, checked at start-up."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from kubevip.core.communities import Community, LargeCommunity, parse_communities, parse_large_communities
from kubevip.envparse import Settings
from kubevip.errors import ConfigError
from kubevip.ip import IPAddress

MAX_ASN = 4_294_967_295
MPBGP_MODES = ("fixed", "auto_sourceip", "auto_sourceif")
# Every BGP setting `kubevip manager` reads: (name, default shown in --help); bgp_enable is the agent's.
BGP_SETTINGS: tuple[tuple[str, str], ...] = (
    ("bgp_as", "65000"),
    ("bgp_routerid", ""),
    ("bgp_routerinterface", ""),
    ("bgp_peeraddress", ""),
    ("bgp_peeras", "65000"),
    ("bgp_peerpass", ""),
    ("bgp_multihop", "false"),
    ("bgp_peers", ""),
    ("bgp_sourceip", ""),
    ("bgp_sourceif", ""),
    ("bgp_hold_time", "30"),
    ("bgp_keepalive_interval", "10"),
    ("mpbgp_nexthop", ""),
    ("mpbgp_ipv4", ""),
    ("mpbgp_ipv6", ""),
    ("bgp_communities", ""),
    ("bgp_large_communities", ""),
    ("annotation", ""),
)


@dataclass(frozen=True)
class MpbgpNextHop:
    """How to pick the next hop of the family other than the session's (kube-vip's `mpbgp_*`)."""

    mode: str = ""  # "" (node address of each family), fixed, auto_sourceip, auto_sourceif
    ipv4: ipaddress.IPv4Address | None = None
    ipv6: ipaddress.IPv6Address | None = None


@dataclass(frozen=True)
class Peer:
    """One BGP neighbour."""

    address: IPAddress
    asn: int
    # Never in a repr (so never in a log line or traceback that prints the settings).
    password: str = field(default="", repr=False)
    multihop: bool = False
    port: int = 179
    mpbgp: MpbgpNextHop | None = None  # per-peer override of the global mpbgp_* settings


@dataclass(frozen=True)
class BgpSettings:
    """Everything the speaker needs, parsed and checked; built by `from_env`."""

    enabled: bool = False
    local_as: int = 65000
    router_id: ipaddress.IPv4Address | None = None
    router_interface: str = ""
    peers: tuple[Peer, ...] = ()
    source_ip: IPAddress | None = None
    source_if: str = ""
    hold_time: int = 30
    keepalive_interval: int = 10
    mpbgp: MpbgpNextHop = MpbgpNextHop()
    communities: tuple[Community, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    # kube-vip's `annotation`: prefix of this node's Node annotations carrying AS, source and peers
    # (core/bgppeers.py); they replace local_as, router id, source and peers while they parse.
    annotation_prefix: str = ""

    @classmethod
    def from_env(cls, s: Settings) -> BgpSettings:
        """Read and validate every BGP setting; a bad value raises ConfigError naming the variable."""
        enabled = s.bool("bgp_enable")
        local_as = s.int("bgp_as", 65000, minimum=1, maximum=MAX_ASN)
        router_id = _router_id(s)
        router_interface = s.str("bgp_routerinterface")
        if router_id is not None and router_interface:
            raise ConfigError(
                "bgp_routerinterface", router_interface, "set bgp_routerid or bgp_routerinterface, not both"
            )
        source_ip = s.ip("bgp_sourceip")
        source_if = s.str("bgp_sourceif")
        if source_ip is not None and source_if:
            raise ConfigError(
                "bgp_sourceif", source_if, "bgp_sourceip and bgp_sourceif are exclusive: set one"
            )
        hold_time = s.int("bgp_hold_time", 30, minimum=0, maximum=65535)
        if 0 < hold_time < 3:
            raise ConfigError("bgp_hold_time", hold_time, "expected 0 (no keepalives) or at least 3 seconds")
        keepalive = s.int("bgp_keepalive_interval", 10, minimum=1, maximum=21845)
        if hold_time and keepalive >= hold_time:
            raise ConfigError(
                "bgp_keepalive_interval", keepalive, f"must be shorter than bgp_hold_time ({hold_time})"
            )
        mpbgp = _global_mpbgp(s, source_ip, source_if)
        peers = _peers(s)
        for peer in peers:
            if peer.mpbgp is not None:
                _check_mpbgp("bgp_peers", peer.mpbgp, source_ip, source_if)
        annotation = s.str("annotation")
        if enabled and not peers and not annotation:
            raise ConfigError(
                "bgp_peers", s.str("bgp_peers"),
                "bgp_enable=true needs bgp_peeraddress, bgp_peers or annotation (Node annotations)",
            )
        try:
            communities = parse_communities(s.str("bgp_communities"))
        except ValueError as exc:
            raise ConfigError("bgp_communities", s.str("bgp_communities"), str(exc)) from None
        try:
            large = parse_large_communities(s.str("bgp_large_communities"))
        except ValueError as exc:
            raise ConfigError("bgp_large_communities", s.str("bgp_large_communities"), str(exc)) from None
        return cls(
            enabled=enabled,
            local_as=local_as,
            router_id=router_id,
            router_interface=router_interface,
            peers=peers,
            source_ip=source_ip,
            source_if=source_if,
            hold_time=hold_time,
            keepalive_interval=keepalive,
            mpbgp=mpbgp,
            communities=communities,
            large_communities=large,
            annotation_prefix=annotation,
        )


def _router_id(s: Settings) -> ipaddress.IPv4Address | None:
    raw = s.str("bgp_routerid")
    if not raw:
        return None
    try:
        return ipaddress.IPv4Address(raw)
    except ValueError:
        raise ConfigError(
            "bgp_routerid", raw, "expected a dotted-quad IPv4 address (a BGP router id)"
        ) from None


def _global_mpbgp(s: Settings, source_ip: IPAddress | None, source_if: str) -> MpbgpNextHop:
    mode = s.str("mpbgp_nexthop")
    if mode and mode not in MPBGP_MODES:
        raise ConfigError("mpbgp_nexthop", mode, f"expected one of {', '.join(MPBGP_MODES)} (or unset)")
    v4 = _family_ip(s.str("mpbgp_ipv4"), "mpbgp_ipv4", 4)
    v6 = _family_ip(s.str("mpbgp_ipv6"), "mpbgp_ipv6", 6)
    result = MpbgpNextHop(mode, v4, v6)  # type: ignore[arg-type]
    _check_mpbgp("mpbgp_nexthop", result, source_ip, source_if)
    return result


def _check_mpbgp(name: str, m: MpbgpNextHop, source_ip: IPAddress | None, source_if: str) -> None:
    if m.mode == "fixed" and m.ipv4 is None and m.ipv6 is None:
        raise ConfigError(name, m.mode, "mpbgp_nexthop=fixed needs mpbgp_ipv4 and/or mpbgp_ipv6")
    if m.mode == "auto_sourceip" and source_ip is None:
        raise ConfigError(name, m.mode, "mpbgp_nexthop=auto_sourceip needs bgp_sourceip")
    if m.mode == "auto_sourceif" and not source_if:
        raise ConfigError(name, m.mode, "mpbgp_nexthop=auto_sourceif needs bgp_sourceif")


def _family_ip(raw: str, name: str, version: int) -> IPAddress | None:
    if not raw:
        return None
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        raise ConfigError(name, raw, f"expected an IPv{version} address") from None
    if ip.version != version:
        raise ConfigError(name, raw, f"expected an IPv{version} address, not IPv{ip.version}")
    return ip


def _peers(s: Settings) -> tuple[Peer, ...]:
    peers: list[Peer] = []
    single = s.str("bgp_peeraddress")
    if single:
        try:
            address = ipaddress.ip_address(single.strip("[]"))
        except ValueError:
            raise ConfigError("bgp_peeraddress", single, "expected an IPv4 or IPv6 address") from None
        password = s.str("bgp_peerpass")
        if not _password_ok(password):
            raise ConfigError("bgp_peerpass", f"<the password of peer {address}>", _PASSWORD_RULE)
        peers.append(
            Peer(
                address=address,
                asn=s.int("bgp_peeras", 65000, minimum=1, maximum=MAX_ASN),
                password=password,
                multihop=s.bool("bgp_multihop"),
            )
        )
    raw = s.str("bgp_peers")
    for entry in raw.split(","):
        if entry.strip():
            peers.append(parse_peer(entry.strip()))
    seen: set[IPAddress] = set()
    for p in peers:
        if p.address in seen:
            # Name the peer, never the raw value: it holds every peer's password.
            raise ConfigError(
                "bgp_peers", f"<peer {p.address}>",
                "this peer is listed twice (bgp_peeraddress and bgp_peers?)",
            )
        seen.add(p.address)
    return tuple(peers)


def parse_peer(entry: str) -> Peer:
    """Parse one `address:AS[:password[:multihop[:port[:mpbgp[:bfd]]]]]` entry; IPv6 addresses in `[ ]`."""
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            raise ConfigError("bgp_peers", entry.split(":")[0], "an IPv6 peer address needs a closing ']'")
        addr_text, rest = entry[1:end], entry[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ConfigError(
                "bgp_peers",
                entry[: end + 1],
                "expected ':' after ']' (format [address]:AS:password:multihop)",
            )
        fields = rest[1:].split(":") if rest else []
    else:
        addr_text, *fields = entry.split(":")
    # Error messages show the entry with its password masked: they end up in logs.
    shown = ":".join(
        [
            f"[{addr_text}]" if entry.startswith("[") else addr_text,
            *("***" if i == 1 and f else f for i, f in enumerate(fields)),
        ]
    )
    try:
        address = ipaddress.ip_address(addr_text)
    except ValueError:
        raise ConfigError(
            "bgp_peers",
            shown,
            f"{addr_text!r} is not an IP address (IPv6 peers go in brackets: [2001:db8::1]:65000)",
        ) from None
    if len(fields) > 6:
        raise ConfigError(
            "bgp_peers", shown, "too many ':' fields (address:AS:password:multihop:port:mpbgp:bfd)"
        )
    fields += [""] * (6 - len(fields))
    as_text, password, multihop_text, port_text, mpbgp_text, bfd_text = fields
    if not as_text:
        raise ConfigError("bgp_peers", shown, "the peer AS is required (address:AS)")
    asn = _int_field(shown, as_text, "AS", 1, MAX_ASN)
    multihop = False
    if multihop_text:
        lowered = multihop_text.lower()
        if lowered not in ("true", "false", "1", "0", "t", "f"):
            raise ConfigError("bgp_peers", shown, f"multihop must be true or false, not {multihop_text!r}")
        multihop = lowered in ("true", "1", "t")
    port = _int_field(shown, port_text, "port", 1, 65535) if port_text else 179
    mpbgp = _peer_mpbgp(shown, mpbgp_text) if mpbgp_text else None
    if bfd_text:
        enable = bfd_text.split(";")[0].lower()
        if enable in ("true", "1", "t"):
            raise ConfigError(
                "bgp_peers", shown, "BFD is not supported by kubevip's speaker: set the bfd field to false"
            )
        if enable not in ("false", "0", "f", ""):
            raise ConfigError("bgp_peers", shown, f"bfd enable must be true or false, not {enable!r}")
    if not _password_ok(password):
        raise ConfigError("bgp_peers", f"<the password of peer {address}>", _PASSWORD_RULE)
    return Peer(address, asn, password, multihop, port, mpbgp)


# Settings that may carry passwords: never passed on to child processes.
SECRET_ENV = frozenset({"bgp_peers", "bgp_peerpass"})

# ExaBGP reads `md5-password "<password>";`: its tokeniser ends the string at either quote character,
# unescapes backslashes and takes at most 80 characters (MAX_MD5_PASSWORD_LENGTH). A password it would
# misread is refused here, before ExaBGP sees it (tests/unit/bgp check the rule against ExaBGP's parser).
MAX_PASSWORD = 80
_PASSWORD_FORBIDDEN = frozenset("\"'\\; \t")
_PASSWORD_RULE = (
    f"the BGP password must be at most {MAX_PASSWORD} printable ASCII characters without quotes (\" or '),"
    " backslashes, ';' or white space (ExaBGP cannot read them)"
)


def password_ok(password: str) -> bool:
    """True when ExaBGP's configuration can carry the password (see _PASSWORD_RULE)."""
    return _password_ok(password)


def _password_ok(password: str) -> bool:
    return len(password) <= MAX_PASSWORD and all(
        c.isascii() and c.isprintable() and c not in _PASSWORD_FORBIDDEN for c in password
    )


def _int_field(entry: str, text: str, what: str, lo: int, hi: int) -> int:
    try:
        n = int(text)
    except ValueError:
        raise ConfigError("bgp_peers", entry, f"{what} must be an integer, not {text!r}") from None
    if not lo <= n <= hi:
        raise ConfigError("bgp_peers", entry, f"{what} must be between {lo} and {hi}")
    return n


def _peer_mpbgp(entry: str, text: str) -> MpbgpNextHop:
    values = {"mpbgp_nexthop": "", "mpbgp_ipv4": "", "mpbgp_ipv6": ""}
    for item in text.split(";"):
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError("bgp_peers", entry, f"MP-BGP option {key!r} needs a value (key=value)")
        if key not in values:
            raise ConfigError(
                "bgp_peers",
                entry,
                f"unknown MP-BGP option {key!r}: use mpbgp_nexthop, mpbgp_ipv4, mpbgp_ipv6",
            )
        values[key] = value
    mode = values["mpbgp_nexthop"]
    if mode and mode not in MPBGP_MODES:
        raise ConfigError("bgp_peers", entry, f"mpbgp_nexthop must be one of {', '.join(MPBGP_MODES)}")
    try:
        v4 = _family_ip(values["mpbgp_ipv4"], "mpbgp_ipv4", 4)
        v6 = _family_ip(values["mpbgp_ipv6"], "mpbgp_ipv6", 6)
    except ConfigError as exc:
        raise ConfigError("bgp_peers", entry, exc.allowed) from None
    return MpbgpNextHop(mode, v4, v6)  # type: ignore[arg-type]
