"""Short renderings of long lists for log lines: a pass that moves 2000 VIPs logs one line, not 2000."""

from __future__ import annotations

from collections.abc import Iterable

SHOWN = 8


def brief(items: Iterable[object], shown: int = SHOWN) -> str:
    """The first `shown` items, comma-separated, then how many more there are."""
    texts = [str(i) for i in items]
    head = ", ".join(texts[:shown])
    rest = len(texts) - shown
    return f"{head} and {rest} more" if rest > 0 else head
