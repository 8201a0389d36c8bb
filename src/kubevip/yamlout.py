"""YAML that Go reads back as we meant it: the one writer of YAML for kubectl, the API server and kubeconfigs.

Rule: every string that a Go YAML reader could take for a number, a boolean or null is quoted.
PyYAML decides which plain scalars need quotes by YAML 1.1, but kubectl and the API server read
numbers their own way (go-yaml with YAML 1.2 floats): PyYAML writes the string ``645e73`` bare,
Go reads 6.45e75, and a label value or an environment value is refused as a number. A string
quoted that needs no quotes costs nothing, so the test is deliberately wide (anything Python or
Go would parse as a number, with or without ``_``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any

import yaml

_WORDS = frozenset({"", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"})


def looks_typed(text: str) -> bool:
    """True when a YAML reader of either version may resolve ``text`` written bare to a non-string."""
    if text.lower() in _WORDS:
        return True
    bare = text.replace("_", "")
    try:
        float(bare)
        return True
    except ValueError:
        pass
    try:
        int(bare, 0)
        return True
    except ValueError:
        return False


class _Dumper(yaml.SafeDumper):
    """SafeDumper whose strings are quoted when they look typed (see the module's rule)."""


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if looks_typed(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="'")
    return dumper.represent_str(data)


_Dumper.add_representer(str, _represent_str)


def dump(obj: Any, stream: IO[str] | None = None) -> str:
    """One YAML document, keys in their given order; written to ``stream`` when given (then "")."""
    out = yaml.dump(obj, stream, Dumper=_Dumper, sort_keys=False)
    return "" if out is None else str(out)


def dump_all(docs: Iterable[Any]) -> str:
    """Several YAML documents separated by ``---``, keys in their given order."""
    return str(yaml.dump_all(list(docs), Dumper=_Dumper, sort_keys=False))
