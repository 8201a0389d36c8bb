"""What a run records about kube-vip versions the Go module proxy does not serve (compare/goproxy.py)."""

from __future__ import annotations

import datetime
import io
import urllib.error
from typing import Any

import pytest
from compare.goproxy import DEFAULT_PROXY, ask, not_served, proxy_url

AT = datetime.datetime(2026, 12, 7, 2, 15, tzinfo=datetime.UTC)


class Served:
    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def read(self, n: int = -1) -> bytes:
        return b'{"Version":"v1.2.2"}'


def refusing(code: int, body: bytes) -> Any:
    asked: list[str] = []

    def opener(url: str, timeout: float) -> Served:
        asked.append(url)
        if "v0.8.2" in url:
            raise urllib.error.HTTPError(url, code, "Forbidden", {}, io.BytesIO(body))  # type: ignore[arg-type]
        return Served(url)

    opener.asked = asked  # type: ignore[attr-defined]
    return opener


def test_a_refusal_is_recorded_with_the_code_the_body_and_the_instant() -> None:
    opener = refusing(403, b"This module version is not available.\n")
    why = ask("v0.8.2", proxy=DEFAULT_PROXY, opener=opener, now=AT)
    assert why == ("proxy.golang.org answered 403 Forbidden, 'This module version is not available.', "
                   "for v0.8.2.info (asked 2026-12-07 02:15 UTC)")
    assert opener.asked == [f"{DEFAULT_PROXY}/github.com/kube-vip/kube-vip/@v/v0.8.2.info"]


def test_a_served_version_is_not_listed() -> None:
    opener = refusing(403, b"x")
    assert ask("v1.2.2", proxy=DEFAULT_PROXY, opener=opener, now=AT) is None
    assert set(not_served(("v0.8.2", "v1.2.2"), opener=opener, now=AT)) == {"v0.8.2"}


def test_an_unreachable_proxy_says_so_instead_of_failing_the_run() -> None:
    def opener(url: str, timeout: float) -> Served:
        raise urllib.error.URLError("no route to host")

    why = ask("v0.8.2", proxy="https://goproxy.example", opener=opener, now=AT)
    assert why is not None and why.startswith("goproxy.example could not be asked for v0.8.2.info")
    assert "no route to host" in why and "2026-12-07 02:15 UTC" in why


@pytest.mark.parametrize(
    ("goproxy", "url"),
    [
        (None, DEFAULT_PROXY),
        ("", DEFAULT_PROXY),
        ("https://proxy.golang.org,direct", DEFAULT_PROXY),
        ("off", DEFAULT_PROXY),
        ("direct|https://mirror.example/go/", "https://mirror.example/go"),
    ],
)
def test_the_first_http_entry_of_goproxy_is_asked(goproxy: str | None, url: str) -> None:
    assert proxy_url(goproxy) == url
