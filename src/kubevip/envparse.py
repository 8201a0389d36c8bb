"""Reads kube-vip style settings: env var first, then flag, then default; every error names the variable."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from kubevip.errors import ConfigError

# The class defines a method named `str`; annotations after it use this alias.
Text = str

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n", ""}


class Settings:
    """A view over the environment and command-line flags with typed, validated getters."""

    def __init__(self, env: Mapping[str, str], flags: Mapping[str, str] | None = None) -> None:
        self._env = env
        self._flags = flags or {}

    def raw(self, name: str, *aliases: str) -> str | None:
        for key in (name, *aliases):
            if key in self._env:
                return self._env[key]
        for key in (name, *aliases):
            if key in self._flags:
                return self._flags[key]
        return None

    def source_name(self, name: str, *aliases: str) -> str:
        for key in (name, *aliases):
            if key in self._env or key in self._flags:
                return key
        return name

    def str(self, name: Text, default: Text = "", *aliases: Text) -> Text:
        value = self.raw(name, *aliases)
        return default if value is None else value.strip()

    def bool(self, name: Text, default: bool = False, *aliases: Text) -> bool:
        value = self.raw(name, *aliases)
        if value is None:
            return default
        v = value.strip().lower()
        if v in _TRUE:
            return True
        if v in _FALSE:
            return False
        raise ConfigError(self.source_name(name, *aliases), value, "expected true or false")

    def int(
        self, name: Text, default: int, *aliases: Text, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name, *aliases)
        if value is None or value.strip() == "":
            return default
        key = self.source_name(name, *aliases)
        try:
            n = int(value.strip())
        except ValueError:
            raise ConfigError(key, value, "expected an integer") from None
        if minimum is not None and n < minimum:
            raise ConfigError(key, value, f"expected an integer >= {minimum}")
        if maximum is not None and n > maximum:
            raise ConfigError(key, value, f"expected an integer <= {maximum}")
        return n

    def choice(self, name: Text, default: Text, allowed: tuple[Text, ...], *aliases: Text) -> Text:
        value = self.str(name, default, *aliases)
        if value not in allowed:
            raise ConfigError(
                self.source_name(name, *aliases), value, f"expected one of {', '.join(allowed)}"
            )
        return value

    def ip(self, name: Text, *aliases: Text) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        value = self.str(name, "", *aliases)
        if not value:
            return None
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            raise ConfigError(
                self.source_name(name, *aliases), value, "expected an IPv4 or IPv6 address"
            ) from None
