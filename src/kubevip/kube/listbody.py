"""A list answer whose items are decoded one at a time, as its consumer walks them.

Why: `json.loads` of a list of 1000 Services and 2000 EndpointSlices builds every item's dicts and strings
at once, 12 MB of small objects for a few hundred KB of views kept from them. CPython's allocator
(pymalloc) returns an arena to the system only when every block in it is free, and the views built
meanwhile sit in those arenas: after the list, a follower kept ~10 MB of the items' memory as free
blocks it never gave back (issue 21, "RSS at 1000 Services"). Decoded item by item, the transient is one
item (a few KB) and the arenas stay few.

Rule: the same document `json.loads` accepts, with the same values; anything else raises ValueError
(json.JSONDecodeError names a position, never the content: a Secret's data stays out of logs). The head
(every key before "items": kind, apiVersion, metadata) is decoded at once, so the resourceVersion and the
continue token are known before any item is; a document whose metadata comes after its items (no API
server writes one) is decoded whole instead. A key repeated after the items keeps its first value
(json.loads keeps the last; no API server repeats one). An error after the first item surfaces while
the consumer walks, so consumers build what they keep aside and swap it in at the end (kube/watch.py's
Reflector).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

RawObject = dict[str, Any]

_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as json.decoder skips it


def _skip(text: str, i: int) -> int:
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # `*` always matches


class ListBody:
    """One page of a list: `head` (kind, apiVersion, metadata) decoded, the items still text.

    Iterate it once to get the items (each with the list's kind when it carries none); a second walk
    raises, since its text is dropped after the first.
    """

    __slots__ = ("_at", "_items", "_text", "head")

    def __init__(self, body: bytes | str) -> None:
        text = body.decode() if isinstance(body, bytes) else body
        self._text: str | None = text
        self._at = -1  # where the items array starts, -1: none in the text
        self._items: list[Any] | None = None  # decoded whole (metadata after the items)
        self.head: RawObject = {}
        i = _skip(text, 0)
        if text[i:i + 1] != "{":
            raise ValueError("the answer is not a JSON object")
        i = _skip(text, i + 1)
        if text[i:i + 1] == "}":
            self._end(text, i + 1)
            return
        while True:
            key, i = self._key(text, i)
            if key == "items":
                if "metadata" not in self.head or "kind" not in self.head:  # they would come after the items
                    self._whole(text)
                    return
                self._at = i
                return
            self.head[key], i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if text[i:i + 1] == "}":
                self._end(text, i + 1)
                return
            if text[i:i + 1] != ",":
                raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
            i = _skip(text, i + 1)

    @staticmethod
    def _key(text: str, i: int) -> tuple[str, int]:
        """A key at `i` and the index of its value."""
        if text[i:i + 1] != '"':
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, i)
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i:i + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", text, i)
        return key, _skip(text, i + 1)

    @staticmethod
    def _end(text: str, i: int) -> None:
        if _skip(text, i) != len(text):
            raise json.JSONDecodeError("Extra data", text, i)

    def _whole(self, text: str) -> None:
        doc = json.loads(text)
        self.head = {k: v for k, v in doc.items() if k != "items"}
        items = doc.get("items")
        if items is not None and not isinstance(items, list):
            raise ValueError("the items are not an array")
        self._items = items or []
        self._text = None

    @property
    def kind(self) -> str:
        """The items' kind: the list's without its "List"."""
        return str(self.head.get("kind", "")).removesuffix("List")

    @property
    def metadata(self) -> RawObject:
        meta = self.head.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def __iter__(self) -> Iterator[RawObject]:
        kind = self.kind
        if self._items is not None:
            items, self._items = self._items, None
            for obj in items:
                yield _item(obj, kind)
            return
        text, self._text = self._text, None
        if text is None:
            raise RuntimeError("a list's items are decoded once; this one was walked already")
        if self._at < 0:
            return
        i = self._at
        if text.startswith("null", i):  # "items": null, as json.loads would give it: no items
            i += 4
        elif text[i:i + 1] != "[":
            raise json.JSONDecodeError("Expecting the items array", text, i)
        else:
            i = _skip(text, i + 1)
            if text[i:i + 1] == "]":
                i += 1
            else:
                while True:
                    obj, i = _DECODER.raw_decode(text, i)
                    yield _item(obj, kind)
                    i = _skip(text, i)
                    c = text[i:i + 1]
                    i = _skip(text, i + 1)
                    if c == "]":
                        break
                    if c != ",":
                        raise json.JSONDecodeError("Expecting ',' delimiter", text, i - 1)
        # After the items: more keys (none from an API server), then the end of the object.
        i = _skip(text, i)
        while text[i:i + 1] == ",":
            key, i = self._key(text, _skip(text, i + 1))
            value, i = _DECODER.raw_decode(text, i)
            self.head.setdefault(key, value)
            i = _skip(text, i)
        if text[i:i + 1] != "}":
            raise json.JSONDecodeError("Expecting ',' delimiter", text, i)
        self._end(text, i + 1)


def _item(obj: Any, kind: str) -> RawObject:
    if not isinstance(obj, dict):
        raise ValueError(f"a list item is a {type(obj).__name__}, not an object")
    if kind:
        obj.setdefault("kind", kind)
    return obj
