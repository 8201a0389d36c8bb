"""BGP configuration from a Node's annotations, in kube-vip's format (setting `annotation` = PREFIX).

kube-vip reads (pkg/manager/watch_annotations.go), on the agent's own Node:
  PREFIX/node-asn       this node's AS                      (required; or PREFIX/bgp-peers-0-node-asn)
  PREFIX/src-ip         source address and router id         (required; or PREFIX/bgp-peers-0-src-ip)
  PREFIX/peer-asn       the peers' AS, one for all peers     (required; or PREFIX/bgp-peers-0-peer-asn)
  PREFIX/peer-ip        peer addresses, comma-separated      (required; also every PREFIX/bgp-peers-N-peer-ip)
  PREFIX/bgp-pass       base64 of the password, all peers    (optional; or PREFIX/bgp-peers-0-bgp-pass)
  PREFIX/peer-multi-hop "true" / "false", all peers          (optional; or PREFIX/bgp-peers-0-peer-multi-hop)
Equinix Metal's CCM writes the `bgp-peers-N-` spelling. Where both spellings of one key exist, kube-vip
takes whichever its map iteration meets last; kubevip takes the plain key. Peers are ordered by N (plain
key first), duplicates dropped. Pure; InputError names the annotation and never shows the password.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from kubevip.core.views import IPAddress
from kubevip.errors import InputError

MAX_ASN = 4_294_967_295
MAX_PEERS = 32


@dataclass(frozen=True)
class NodeBgp:
    """What a Node's annotations say: local AS, source (and router id), peers with their shared options."""

    local_as: int
    source_ip: IPAddress
    peer_as: int
    peers: tuple[IPAddress, ...]
    password: str = field(default="", repr=False)  # never in a repr, so never in a log line
    multihop: bool = False


def _one(ann: Mapping[str, str], prefix: str, name: str) -> tuple[str, str] | None:
    """(key, value) of PREFIX/name, else PREFIX/bgp-peers-0-name; None when neither is there."""
    for key in (f"{prefix}/{name}", f"{prefix}/bgp-peers-0-{name}"):
        if key in ann:
            return key, ann[key]
    return None


def _asn(ann: Mapping[str, str], prefix: str, name: str) -> int:
    got = _one(ann, prefix, name)
    if got is None or not got[1].strip():
        raise InputError(f"annotation {prefix}/{name} is missing or empty")
    key, raw = got
    text = raw.strip()
    if not text.isdigit() or not 0 < int(text) <= MAX_ASN:
        raise InputError(f"annotation {key}={raw[:40]!r}: expected an AS number 1-{MAX_ASN}")
    return int(text)


def has_any(annotations: Mapping[str, str], prefix: str) -> bool:
    """True when the Node carries any annotation under `prefix/` (so a missing one is worth a warning)."""
    return any(k.startswith(f"{prefix}/") for k in annotations)


def parse(annotations: Mapping[str, str], prefix: str) -> NodeBgp:
    """The Node's BGP configuration; InputError naming the first missing or bad annotation."""
    ann = annotations
    local_as = _asn(ann, prefix, "node-asn")
    src = _one(ann, prefix, "src-ip")
    if src is None or not src[1].strip():
        raise InputError(f"annotation {prefix}/src-ip is missing or empty")
    try:
        source_ip = ipaddress.ip_address(src[1].strip())
    except ValueError:
        raise InputError(f"annotation {src[0]}={src[1][:60]!r}: not an IP address") from None
    peer_as = _asn(ann, prefix, "peer-asn")
    pattern = re.compile(rf"^{re.escape(prefix)}/(?:bgp-peers-([0-9]{{1,4}})-)?peer-ip$")
    keyed: list[tuple[int, str, str]] = []
    for key, value in ann.items():
        m = pattern.match(key)
        if m is not None:
            keyed.append((-1 if m[1] is None else int(m[1]), key, value))
    peers: list[IPAddress] = []
    for _, key, value in sorted(keyed):
        for part in value.split(","):
            text = part.strip()
            if not text:
                continue
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                raise InputError(f"annotation {key}: {text[:60]!r} is not an IP address") from None
            if ip not in peers:
                peers.append(ip)
    if not peers:
        raise InputError(f"annotation {prefix}/peer-ip is missing or empty")
    if len(peers) > MAX_PEERS:
        raise InputError(f"annotations {prefix}/*peer-ip name {len(peers)} peers; at most {MAX_PEERS}")
    password = ""
    got = _one(ann, prefix, "bgp-pass")
    if got is not None and got[1]:
        try:
            password = base64.b64decode(got[1].strip(), validate=True).decode()
        except (binascii.Error, ValueError):
            # The value is a secret: name the annotation only.
            raise InputError(f"annotation {got[0]}: not base64 of a UTF-8 password") from None
    multihop = False
    got = _one(ann, prefix, "peer-multi-hop")
    if got is not None:
        if got[1] not in ("true", "false"):
            raise InputError(f"annotation {got[0]}={got[1][:20]!r}: must be \"true\" or \"false\"")
        multihop = got[1] == "true"
    return NodeBgp(local_as, source_ip, peer_as, tuple(peers), password, multihop)
