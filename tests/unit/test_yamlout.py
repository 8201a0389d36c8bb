"""kubevip.yamlout: strings that a Go YAML reader would take for numbers, booleans or null are quoted;
everything reads back unchanged."""

from __future__ import annotations

import re

import yaml
from hypothesis import given
from hypothesis import strategies as st

from kubevip import yamlout

# go-yaml's plain-scalar resolution (what kubectl and the API server read), written out independently of
# the module's test: YAML 1.2 floats, integers in any base with `_`, and the 1.1 words.
GO_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
GO_INT = re.compile(r"[-+]?(0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)")
GO_WORDS = {"y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
            "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "",
            ".inf", ".Inf", ".INF", "-.inf", "+.inf", ".nan", ".NaN", ".NAN"}

numberish = st.text(alphabet="0123456789+-._eExXoObBaf", max_size=12)


def go_reads_as_other(text: str) -> bool:
    return text in GO_WORDS or bool(GO_FLOAT.fullmatch(text) or GO_INT.fullmatch(text))


def plain(text: str) -> bool:
    """The dump wrote `text` without quotes (one document holding only the string)."""
    return not yamlout.dump(text).startswith(("'", '"'))


@given(numberish | st.text(max_size=20))
def test_every_string_reads_back_unchanged(text: str) -> None:
    assert yaml.safe_load(yamlout.dump({"v": text})) == {"v": text}


@given(numberish | st.sampled_from(sorted(GO_WORDS)))
def test_what_go_would_read_as_a_number_or_word_is_quoted(text: str) -> None:
    if go_reads_as_other(text):
        assert not plain(text), text


def test_the_tag_that_broke_the_admission_test() -> None:
    # secrets.token_hex(3) gave "645e73": bare in PyYAML's output, 6.45e75 to the API server.
    assert yamlout.dump({"kvt-vap": "645e73"}) == "kvt-vap: '645e73'\n"
    assert yaml.safe_dump({"kvt-vap": "645e73"}) == "kvt-vap: 645e73\n"  # the bug this module exists for


def test_ordinary_strings_stay_plain_and_keys_keep_their_order() -> None:
    assert yamlout.dump({"b": "web", "a": "10.0.0.1", "c": "2001:db8::1"}) == (
        "b: web\na: 10.0.0.1\nc: 2001:db8::1\n")
    assert plain("x1e3") and plain("kube-vip") and plain("0.8.2")


def test_dump_all_separates_documents_and_stream_form_writes() -> None:
    import io

    assert list(yaml.safe_load_all(yamlout.dump_all([{"a": "1"}, {"b": 2}]))) == [{"a": "1"}, {"b": 2}]
    buf = io.StringIO()
    assert yamlout.dump({"a": "1e3"}, buf) == ""
    assert buf.getvalue() == "a: '1e3'\n"
