"""Election timings and settings (kube-vip's variables plus ours), validated once at start-up."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from kubevip.core.leases import SERVICE_LEASE_PREFIX, ref_problem, split_ref
from kubevip.envparse import Settings
from kubevip.errors import ConfigError

# kube-vip's Lease names (KUBE-VIP-FACTS.md); per Service: "kubevip-<service>" in its namespace.
CONTROL_PLANE_LEASE = "plndr-cp-lock"
SERVICES_LEASE = "plndr-svcs-lock"
DEFAULT_NAMESPACE = "kube-system"
MODES = ("lease", "scalable")
# kube-vip puts its global Leases in the Pod's own namespace, read from here (pkg/lease returnNamespace).
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def service_lease_name(service: str) -> str:
    """kube-vip's per-Service Lease name (svc_election=true)."""
    return f"{SERVICE_LEASE_PREFIX}{service}"


def pod_namespace(path: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """The Pod's namespace from its service-account mount, "" outside a Pod (a static Pod has none)."""
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def lease_namespace(settings: Settings, sa_namespace: Path = SERVICE_ACCOUNT_NAMESPACE) -> str:
    """Where the global Leases (plndr-cp-lock, plndr-svcs-lock) live when their setting names no `ns/`.

    kube-vip's rule: the Pod's own namespace, else `cp_namespace` (static Pods), else kube-system.
    `vip_leasenamespace` (kubevip's older setting) still wins when set, so existing kubevip installs keep
    their Leases."""
    explicit = settings.str("vip_leasenamespace")
    if explicit:
        return explicit
    return pod_namespace(sa_namespace) or settings.str("cp_namespace") or DEFAULT_NAMESPACE


def _lease_setting(settings: Settings, name: str, default: str, namespace: str) -> tuple[str, str]:
    """(namespace, name) of a Lease setting, kube-vip's `ns/name` form allowed; errors name the setting."""
    value = settings.str(name, default) or default
    if problem := ref_problem(value, namespace):
        raise ConfigError(settings.source_name(name), value, f"not a Lease name ({problem})")
    return split_ref(value, namespace)


@dataclass(frozen=True)
class Timings:
    """Seconds; a leader stops announcing `renew_deadline` after its last accepted renewal was sent.

    Invariant: renew_deadline + skew_margin < lease_duration, so the leader has withdrawn before any
    peer may consider the Lease expired (peers count lease_duration from when they saw the renewal).
    """

    lease_duration: float = 1.5
    renew_deadline: float = 1.0
    retry_period: float = 0.25
    skew_margin: float = 0.25
    # Scalable mode: seconds between steady renewals of a node's liveness Lease (None: retry_period).
    # Fencing does not depend on it (see election/liveness.py); only the attempts left before the
    # renew deadline do, so it must leave room for one retry: liveness_period + retry_period <
    # renew_deadline.
    liveness: float | None = None

    @property
    def liveness_period(self) -> float:
        return self.retry_period if self.liveness is None else self.liveness

    def validate(self) -> Timings:
        for name, value in (
            ("vip_leaseduration", self.lease_duration),
            ("vip_renewdeadline", self.renew_deadline),
            ("vip_retryperiod", self.retry_period),
        ):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(name, value, "expected a positive number of seconds")
        if not (math.isfinite(self.skew_margin) and self.skew_margin >= 0):
            raise ConfigError("vip_leaseskewmargin", self.skew_margin, "expected seconds >= 0")
        if not self.renew_deadline + self.skew_margin < self.lease_duration:
            raise ConfigError(
                "vip_renewdeadline",
                self.renew_deadline,
                f"vip_renewdeadline ({self.renew_deadline}) + vip_leaseskewmargin ({self.skew_margin})"
                f" must be less than vip_leaseduration ({self.lease_duration}): a leader must stop announcing"
                " before its Lease can expire for a peer; lower vip_renewdeadline or raise vip_leaseduration",
            )
        if not self.retry_period < self.renew_deadline:
            raise ConfigError(
                "vip_retryperiod",
                self.retry_period,
                f"must be less than vip_renewdeadline ({self.renew_deadline}) so a leader gets at least"
                " two renewal attempts before it fences itself",
            )
        if self.liveness is not None:
            if not (math.isfinite(self.liveness) and self.liveness > 0):
                raise ConfigError("vip_livenessperiod", self.liveness, "expected a positive number of"
                                  " seconds")
            if not self.liveness + self.retry_period < self.renew_deadline:
                raise ConfigError(
                    "vip_livenessperiod",
                    self.liveness,
                    f"vip_livenessperiod ({self.liveness}) + vip_retryperiod ({self.retry_period}) must be"
                    f" less than vip_renewdeadline ({self.renew_deadline}): a failed liveness renewal needs"
                    " a retry before the node fences itself; lower vip_livenessperiod or raise"
                    " vip_renewdeadline (and vip_leaseduration)",
                )
        return self

    @property
    def duration_seconds_field(self) -> int:
        """leaseDurationSeconds is an integer: round up so integer-only peers wait longer, never less."""
        return max(1, math.ceil(self.lease_duration))


@dataclass(frozen=True)
class ElectionConfig:
    """Everything leader election reads from the environment."""

    enabled: bool
    lease_name: str
    namespace: str
    services_lease_name: str
    per_service: bool
    mode: str
    timings: Timings
    # `namespace` is where kube-vip's global Leases live by default (lease_namespace()); vip_leasename and
    # svc_leasename may name their own (`ns/name`). "" means `namespace`.
    cp_namespace: str = ""
    services_namespace: str = ""

    @property
    def cp_lease_namespace(self) -> str:
        return self.cp_namespace or self.namespace

    @property
    def services_lease_namespace(self) -> str:
        return self.services_namespace or self.namespace


def _seconds(settings: Settings, name: str, default: float) -> float:
    """Seconds as kube-vip writes them (integers) or fractional ("0.5"); errors name the variable."""
    raw = settings.raw(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(settings.source_name(name), raw, "expected seconds, e.g. 2 or 0.5") from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(settings.source_name(name), raw, "expected a positive number of seconds")
    return value


def config_from_settings(
    settings: Settings, sa_namespace: Path = SERVICE_ACCOUNT_NAMESPACE
) -> ElectionConfig:
    """Read and validate the election settings; raises ConfigError naming the variable at fault."""
    d = Timings()
    timings = Timings(
        lease_duration=_seconds(settings, "vip_leaseduration", d.lease_duration),
        renew_deadline=_seconds(settings, "vip_renewdeadline", d.renew_deadline),
        retry_period=_seconds(settings, "vip_retryperiod", d.retry_period),
        skew_margin=_margin(settings, d.skew_margin),
        liveness=_seconds(settings, "vip_livenessperiod", 0.0) or None,
    ).validate()
    default_ns = lease_namespace(settings, sa_namespace)
    cp_ns, cp_name = _lease_setting(settings, "vip_leasename", CONTROL_PLANE_LEASE, default_ns)
    svc_ns, svc_name = _lease_setting(settings, "svc_leasename", SERVICES_LEASE, default_ns)
    return ElectionConfig(
        enabled=settings.bool("vip_leaderelection", False),
        lease_name=cp_name,
        namespace=default_ns,
        cp_namespace=cp_ns,
        services_lease_name=svc_name,
        per_service=settings.bool("svc_election", False),
        mode=settings.choice("vip_electionmode", "lease", MODES),
        timings=timings,
        services_namespace=svc_ns,
    )


def _margin(settings: Settings, default: float) -> float:
    raw = settings.raw("vip_leaseskewmargin")
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError("vip_leaseskewmargin", raw, "expected seconds >= 0, e.g. 0.25") from None
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError("vip_leaseskewmargin", raw, "expected seconds >= 0, e.g. 0.25")
    return value
