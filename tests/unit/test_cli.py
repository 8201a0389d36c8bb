"""The command line's own settings: the log level from --log-level or kube-vip's vip_loglevel."""

from __future__ import annotations

import argparse
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip import cli
from kubevip.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "level"),
    [("-8", logging.DEBUG), ("-4", logging.DEBUG), ("-3", logging.INFO), ("0", logging.INFO),
     (" 0 ", logging.INFO), ("1", logging.WARNING), ("4", logging.WARNING), ("5", logging.ERROR),
     ("8", logging.ERROR), ("", logging.INFO)],
)
def test_vip_loglevel_is_a_slog_level_like_kube_vips(value: str, level: int) -> None:
    assert cli.log_level(None, {"vip_loglevel": value}) == level


def test_without_either_the_level_is_info() -> None:
    assert cli.log_level(None, {}) == logging.INFO


@given(st.sampled_from(["debug", "INFO", "Warning", "ERROR"]), st.integers(-10, 10))
def test_the_flag_wins_over_the_environment(flag: str, env: int) -> None:
    assert cli.log_level(flag, {"vip_loglevel": str(env)}) == getattr(logging, flag.upper())


@given(st.integers(-100, 100))
def test_a_higher_number_never_shows_more(n: int) -> None:
    assert cli.log_level(None, {"vip_loglevel": str(n)}) <= cli.log_level(None, {"vip_loglevel": str(n + 1)})


def test_a_bad_value_names_the_setting_and_the_value() -> None:
    with pytest.raises(ConfigError, match=r"^vip_loglevel='debug': expected a whole number"):
        cli.log_level(None, {"vip_loglevel": "debug"})


def test_main_refuses_a_bad_vip_loglevel_before_running_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("vip_loglevel", "loud")
    assert cli.main(["manifest", "rbac"]) == 2
    out, err = capsys.readouterr()
    assert out == "", "the command did not run"
    assert "vip_loglevel='loud': expected a whole number" in err


NAMES = tuple(m.rsplit(".", 1)[1] for m in cli.COMMANDS)
GLOBAL_OPTIONS = st.lists(
    st.sampled_from([("--log-level", "debug"), ("--log-level", "manager"), ("--log-level=INFO",)]), max_size=3
)


@given(GLOBAL_OPTIONS, st.sampled_from(NAMES), st.lists(st.text(max_size=8), max_size=4))
def test_the_command_is_the_first_word_after_the_global_options(
    options: list[tuple[str, ...]], name: str, rest: list[str]
) -> None:
    assert cli.command_of([a for option in options for a in option] + [name, *rest]) == name


def registered(parser: argparse.ArgumentParser) -> set[str]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_a_named_command_registers_only_itself_and_anything_else_registers_all() -> None:
    # Each command module registers the command named like the module: the lookup depends on it.
    assert registered(cli.build_parser()) == set(NAMES)
    for name in NAMES:
        assert registered(cli.build_parser(["--log-level", "debug", name, "--help"])) == {name}
    for argv in ([], ["--version"], ["nope"], ["--log-level", "debug"]):
        assert registered(cli.build_parser(argv)) == set(NAMES)


def test_an_unknown_command_still_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["nope"])
    assert "{" + ",".join(NAMES) + "}" in capsys.readouterr().err
