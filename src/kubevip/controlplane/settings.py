"""Control-plane VIP settings (`cp_enable`, `address`, `port`, `dns_mode`, health checks), validated once."""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import urlsplit

from kubevip.controlplane.resolve import DNS_MODES, Entry, parse_addresses
from kubevip.envparse import Settings
from kubevip.errors import ConfigError

DEFAULT_PORT = 6443
# How the agent reaches an API server for its election and health checks.
APISERVER_LOCAL = "local"  # https://127.0.0.1:<port>, the certificate checked against the kubeconfig's host
APISERVER_KUBECONFIG = "kubeconfig"  # the kubeconfig's server as written (usually the VIP itself)

# (name, default shown in --help and docs). The manager registers a flag `--<name>` for each.
CP_SETTINGS: tuple[tuple[str, str], ...] = (
    ("address", ""),
    ("vip_address", ""),
    ("port", str(DEFAULT_PORT)),
    ("dns_mode", "first"),
    ("vip_leasename", "plndr-cp-lock"),
    ("cp_apiserver", APISERVER_LOCAL),
    ("cp_health_period", "0.5"),
    ("cp_health_timeout", "0.5"),
    ("cp_health_threshold", "3"),
    ("cp_health_path", "/livez"),
    ("cp_dns_interval", "10"),
)


@dataclass(frozen=True)
class HealthSettings:
    """How the local API server is checked: every `period` s, `timeout` s each, `threshold` misses = down."""

    period: float = 0.5
    timeout: float = 0.5
    threshold: int = 3
    path: str = "/livez"


@dataclass(frozen=True)
class ControlPlaneSettings:
    """Everything the control-plane VIP reads from the environment (election timings come separately)."""

    enabled: bool
    entries: tuple[Entry, ...]
    port: int
    dns_mode: str
    apiserver: str  # APISERVER_LOCAL, APISERVER_KUBECONFIG or an https:// URL
    health: HealthSettings
    dns_interval: float

    @classmethod
    def from_env(cls, s: Settings) -> ControlPlaneSettings:
        """Read and validate; a bad value raises ConfigError naming the variable."""
        enabled = s.bool("cp_enable")
        raw = s.str("address", "", "vip_address")
        entries = parse_addresses(raw, s.source_name("address", "vip_address"))
        if enabled and not entries:
            raise ConfigError("address", raw, "cp_enable=true needs the control-plane VIP: set address to "
                              "an IP, a v4,v6 pair or a DNS name")
        return cls(
            enabled=enabled,
            entries=entries,
            port=s.int("port", DEFAULT_PORT, minimum=1, maximum=65535),
            dns_mode=s.choice("dns_mode", "first", DNS_MODES),
            apiserver=_apiserver(s),
            health=HealthSettings(
                period=_seconds(s, "cp_health_period", 0.5),
                timeout=_seconds(s, "cp_health_timeout", 0.5),
                threshold=s.int("cp_health_threshold", 3, minimum=1, maximum=1000),
                path=_path(s),
            ),
            dns_interval=_seconds(s, "cp_dns_interval", 10.0),
        )

    def local_url(self) -> str:
        """The local API server's URL used when `cp_apiserver=local`."""
        return f"https://127.0.0.1:{self.port}"


def _seconds(s: Settings, name: str, default: float) -> float:
    raw = s.raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(name, raw, "expected seconds, e.g. 1 or 0.5") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(name, raw, "expected a positive number of seconds")
    return value


def _path(s: Settings) -> str:
    value = s.str("cp_health_path", "/livez") or "/livez"
    if not value.startswith("/"):
        raise ConfigError("cp_health_path", value, "expected an absolute URL path such as /livez")
    return value


def _apiserver(s: Settings) -> str:
    value = s.str("cp_apiserver", APISERVER_LOCAL) or APISERVER_LOCAL
    if value in (APISERVER_LOCAL, APISERVER_KUBECONFIG):
        return value
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError("cp_apiserver", value,
                          "expected local, kubeconfig, or an https:// URL such as https://127.0.0.1:6443")
    return value.rstrip("/")
