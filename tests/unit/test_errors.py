"""Exceptions in log lines: never an empty text after the colon."""

from __future__ import annotations

from kubevip.errors import ConfigError, describe


def test_describe_names_the_type_of_an_exception_without_a_message() -> None:
    assert describe(TimeoutError()) == "TimeoutError"
    assert describe(ConnectionResetError()) == "ConnectionResetError"
    assert describe(ConfigError("svc_enable", "maybe", "not a boolean")) == str(
        ConfigError("svc_enable", "maybe", "not a boolean"))
