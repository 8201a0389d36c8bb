"""Kubernetes label selectors in their string form (`kubectl -l`): equality- and set-based.

Grammar (k8s.io/apimachinery labels.Parse, without the `>`/`<` operators no API selector accepts):
requirements separated by commas, each one of `key`, `!key`, `key=value`, `key==value`, `key!=value`,
`key in (v1,v2)`, `key notin (v1,v2)`. An empty string selects everything. Pure; InputError names the
offending part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from kubevip.errors import InputError

EXISTS = "exists"
NOT_EXISTS = "!"
EQUALS = "="
NOT_EQUALS = "!="
IN = "in"
NOT_IN = "notin"

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
_PREFIX = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_KEY_RE = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
_VALUE_RE = re.compile(rf"^({_NAME})?$")
# One requirement: key, then an operator and its operand(s); set operands in parentheses.
_REQ_RE = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[^\s=!(),]+)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[^\s=!(),]*)|(?<=\s)(?P<setop>in|notin)\s*\((?P<values>[^()]*)\))?\s*$"
)


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == EXISTS:
            return has
        if self.op == NOT_EXISTS:
            return not has
        value = labels.get(self.key)
        if self.op in (EQUALS, IN):
            return has and value in self.values
        return not has or value not in self.values  # != and notin match an absent key (Kubernetes)

    def __str__(self) -> str:
        vals = sorted(self.values)
        if self.op == EXISTS:
            return self.key
        if self.op == NOT_EXISTS:
            return f"!{self.key}"
        if self.op in (EQUALS, NOT_EQUALS):
            return f"{self.key}{self.op}{vals[0]}"
        return f"{self.key} {self.op} ({','.join(vals)})"


@dataclass(frozen=True)
class Selector:
    """All requirements must hold; no requirement selects everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def failing(self, labels: Mapping[str, str]) -> tuple[Requirement, ...]:
        """The requirements `labels` do not meet (for messages: which part refused a node)."""
        return tuple(r for r in self.requirements if not r.matches(labels))

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


def _split(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    out: list[str] = []
    depth = 0
    cur: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise InputError(f"unbalanced ')' in {text!r}")
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise InputError(f"unbalanced '(' in {text!r}")
    out.append("".join(cur))
    return out


def _key(key: str, part: str) -> str:
    # Kubernetes' qualified name: an optional DNS subdomain prefix (at most 253) and a name (at most 63).
    prefix, _, name = key.rpartition("/")
    if len(prefix) > 253 or len(name) > 63 or not _KEY_RE.match(key):
        raise InputError(f"{part!r}: {key!r} is not a valid label key")
    return key


def _value(value: str, part: str) -> str:
    if not _VALUE_RE.match(value):
        raise InputError(f"{part!r}: {value!r} is not a valid label value")
    return value


def parse(text: str) -> Selector:
    """The selector `text` means; InputError naming the requirement that does not parse."""
    if len(text) > 4096:
        raise InputError(f"selector of {len(text)} characters is too long (at most 4096)")
    if not text.strip():
        return Selector()
    reqs: list[Requirement] = []
    for part in _split(text):
        m = _REQ_RE.match(part)
        if m is None or not part.strip():
            raise InputError(f"{part.strip()!r} is not a label requirement (key, !key, key=v, key!=v, "
                             "key in (a,b), key notin (a,b))")
        key = _key(m["key"], part.strip())
        if m["neg"]:
            if m["op"] or m["setop"]:
                raise InputError(f"{part.strip()!r}: '!' only negates a bare key")
            reqs.append(Requirement(key, NOT_EXISTS))
        elif m["op"]:
            op = NOT_EQUALS if m["op"] == "!=" else EQUALS
            reqs.append(Requirement(key, op, frozenset({_value(m["value"], part.strip())})))
        elif m["setop"]:
            values = [v.strip() for v in m["values"].split(",")]
            if values == [""]:
                raise InputError(f"{part.strip()!r}: a set needs at least one value")
            reqs.append(Requirement(key, m["setop"], frozenset(_value(v, part.strip()) for v in values)))
        else:
            reqs.append(Requirement(key, EXISTS))
    return Selector(tuple(reqs))
