"""What the Go module proxy answers, at the run's start, for the kube-vip versions issue 21 asks for.

The answer goes into the run's JSON and the docs section (`peer_versions_not_served`), with the instant it
was asked: the issue wants each run to say what the proxy answered then, not what it answered once.
"""

from __future__ import annotations

import datetime
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

MODULE = "github.com/kube-vip/kube-vip"
DEFAULT_PROXY = "https://proxy.golang.org"
# Asked for by the issue, not built by this bench (bench/peers/kube-vip/README.md).
ASKED = ("v0.8.2",)

Opener = Callable[..., Any]


def proxy_url(goproxy: str | None) -> str:
    """The first HTTP(S) entry of a GOPROXY list (`,` or `|` separated), else proxy.golang.org."""
    for entry in (goproxy or "").replace("|", ",").split(","):
        entry = entry.strip().rstrip("/")
        if entry.startswith(("https://", "http://")):
            return entry
    return DEFAULT_PROXY


def ask(version: str, *, proxy: str, opener: Opener = urllib.request.urlopen,
        now: datetime.datetime | None = None) -> str | None:
    """None when the proxy serves `version`'s .info; else one line: what it answered, and when."""
    at = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%d %H:%M UTC")
    host = proxy.split("://", 1)[-1]
    url = f"{proxy}/{MODULE}/@v/{version}.info"
    try:
        with opener(url, timeout=20) as answer:
            answer.read(4096)
        return None
    except urllib.error.HTTPError as e:
        body = " ".join(e.read(300).decode("utf-8", "replace").split())
        return f"{host} answered {e.code} {e.reason}, '{body}', for {version}.info (asked {at})"
    except (urllib.error.URLError, OSError) as e:
        return f"{host} could not be asked for {version}.info: {e} (at {at})"


def not_served(versions: Iterable[str] = ASKED, *, opener: Opener = urllib.request.urlopen,
               now: datetime.datetime | None = None) -> dict[str, str]:
    """{version: the proxy's answer} for each asked version the proxy does not serve."""
    proxy = proxy_url(os.environ.get("GOPROXY"))
    answers = {v: ask(v, proxy=proxy, opener=opener, now=now) for v in versions}
    return {v: why for v, why in answers.items() if why is not None}
