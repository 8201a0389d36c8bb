"""The exception hierarchy: every message tells the operator what to change."""

from __future__ import annotations


class KubevipError(Exception):
    """Base of every error kubevip raises on purpose."""


class ConfigError(KubevipError):
    """A setting (env var, flag, file) has a value we cannot use; the message names it and what is allowed."""

    def __init__(self, name: str, value: object, allowed: str) -> None:
        self.name = name
        self.value = value
        self.allowed = allowed
        super().__init__(f"{name}={value!r}: {allowed}")


class InputError(KubevipError):
    """An input file or object is unreadable or malformed; the message names the file and document."""


class NetworkError(KubevipError):
    """The kernel refused a change (address, route, socket); the message names interface and address."""


class CapabilityError(KubevipError):
    """The process lacks a Linux capability its settings need; the message names it (CAP_NET_RAW, ...)."""


class InterfaceNotFoundError(NetworkError):
    """No interface could be chosen for a family."""


class ElectionError(KubevipError):
    """Leader election cannot proceed (bad timings, Lease API unusable)."""


class BgpError(KubevipError):
    """The BGP speaker refused a command or could not be started."""


class IpamError(KubevipError):
    """An address pool is malformed or exhausted."""


class LabError(KubevipError):
    """The local lab could not be started; the message says which process or step failed."""


def describe(exc: BaseException) -> str:
    """An exception for a log line: its message, or its type when it has none (a bare TimeoutError or a
    dropped connection used to leave "not written (retrying): " with nothing after the colon)."""
    return str(exc) or type(exc).__name__


def yaml_problem(exc: Exception) -> str:
    """A YAML error's problem and position, without the text around it: PyYAML's own message quotes the
    offending line, and the line may hold a token or a password (a kubeconfig, a Secret in a manifest)."""
    problem = getattr(exc, "problem", None) or type(exc).__name__
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return " ".join(f"{problem}{where}".split())
