"""kubevip.startup: imports without the collector, dataclasses' methods and regex programs compiled once
per interpreter."""

from __future__ import annotations

import dataclasses
import gc
import marshal
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubevip import startup


@pytest.fixture(autouse=True)
def bytecode_written(monkeypatch: pytest.MonkeyPatch) -> None:
    # The file follows the bytecode switch; a shell with PYTHONDONTWRITEBYTECODE would write nothing.
    monkeypatch.setattr(sys, "dont_write_bytecode", False)


def make_class(tag: str) -> type:
    """A frozen dataclass as kubevip's modules declare them (annotations are strings: __future__)."""
    @dataclasses.dataclass(frozen=True)
    class Row:
        name: str
        port: int = 80
        tags: tuple[str, ...] = ()

    Row.__qualname__ = f"Row{tag}"
    return Row


def behaviour(cls: type) -> tuple[object, ...]:
    a, b = cls("x", 1, ("t",)), cls("x", 1, ("t",))
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.name = "y"
    init = vars(cls)["__init__"]
    return (repr(a), a == b, hash(a) == hash(b), a != cls("y"), init.__annotations__,
            init.__defaults__, vars(cls)["__match_args__"])


def test_a_class_is_the_same_with_and_without_the_file(tmp_path: Path) -> None:
    plain = behaviour(make_class("a"))
    path = tmp_path / "code.marshal"
    with startup.imports(path) as first:
        compiled = behaviour(make_class("a"))
    assert first is not None and first.compiled > 0 and path.exists()
    with startup.imports(path) as second:
        cached = behaviour(make_class("a"))
    assert second is not None and second.compiled == 0  # every method came from the file
    assert plain == compiled == cached


def test_the_shim_and_the_collector_are_restored_even_on_error(tmp_path: Path) -> None:
    assert gc.isenabled()
    compiler = re._compiler.compile  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError), startup.imports(tmp_path / "f"):
        assert not gc.isenabled() and "exec" in vars(dataclasses)
        assert re._compiler.compile is not compiler  # type: ignore[attr-defined]
        raise RuntimeError("an import failed")
    assert gc.isenabled() and "exec" not in vars(dataclasses)
    assert re._compiler.compile is compiler  # type: ignore[attr-defined]
    gc.disable()
    try:
        with startup.imports(tmp_path / "f"):
            pass
        assert not gc.isenabled()  # a collector that was off stays off
    finally:
        gc.enable()


def test_nested_use_keeps_the_outer_shim(tmp_path: Path) -> None:
    with startup.imports(tmp_path / "outer") as outer:
        with startup.imports(tmp_path / "inner"):
            make_class("n")
            fresh_pattern("nested")
        assert "exec" in vars(dataclasses)
        assert outer is not None and outer.programs  # the pattern went to the outer file
    assert outer is not None and outer.compiled > 0
    assert (tmp_path / "outer").exists() and not (tmp_path / "inner").exists()


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x00" * 64])
def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "code.marshal"
    path.write_bytes(content)
    with startup.imports(path) as code:
        assert behaviour(make_class("d")) == behaviour(make_class("d"))
    assert code is not None and code.compiled > 0
    assert startup.read(path)[0]  # rewritten whole


def test_a_file_of_another_interpreter_or_layout_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "code.marshal"
    src = "def __create_fn__():\n  def f(self): return 1\n  return f\n"
    entries = {startup.digest(src): compile(src, "<s>", "exec")}
    path.write_bytes(marshal.dumps((b"other", entries, {})))
    assert startup.read(path) == ({}, {})
    path.write_bytes(marshal.dumps((startup._TAG, entries)))  # the layout before regex programs
    assert startup.read(path) == ({}, {})
    path.write_bytes(marshal.dumps((startup._TAG, entries, {b"k": (0, [1], 0, {}, ())})))
    assert startup.read(path) == (entries, {b"k": (0, [1], 0, {}, ())})


def test_a_read_only_directory_or_no_bytecode_writes_nothing(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with startup.imports(tmp_path / "f") as code:
        make_class("r")
    assert code is not None and code.compiled > 0 and not code.save()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert not startup.write(blocked / "f", {}, {})  # a parent that is a file: OSError, no exception
    assert os.listdir(tmp_path) == ["file-not-dir"]  # and no temporary file left


@given(st.text(), st.text())
def test_digest_tells_texts_apart(a: str, b: str) -> None:
    assert (startup.digest(a) == startup.digest(b)) == (a == b)


def test_the_agents_start_reads_the_file_a_warm_run_wrote(tmp_path: Path) -> None:
    # Two fresh interpreters as two agent starts: the first compiles and writes, the second compiles no
    # dataclass text, takes its patterns' programs from the file and leaves the file as it was. The file
    # lives where kubevip.startup.default_path() says, moved here by pycache_prefix.
    code = textwrap.dedent("""
        import os, sys
        from kubevip import startup
        with startup.imports() as c:
            import kubevip.runner
        path = startup.default_path()
        st = os.stat(path)
        print(c.compiled_texts, len(c.used_programs), c.compiled - c.compiled_texts,
              path is not None and path.is_relative_to(sys.pycache_prefix), st.st_ino, st.st_mtime_ns)
    """)
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    first = runs[0]
    assert int(first[0]) > 300 and int(first[1]) > 50 and first[2] == first[1] and first[3] == "True"
    second = runs[1]
    assert second[0] == "0" and second[1] == first[1] and second[3] == "True"
    # only the few patterns built from a set's order (string hashing differs per process) are new
    assert int(second[2]) < int(second[1]) // 10
    assert second[4:] == first[4:]  # not written again


def test_the_command_line_imports_the_agent_under_the_context() -> None:
    # `kubevip manager` names the runner in `imports`; kubevip.cli loads it inside startup.imports().
    from kubevip.cli import build_parser

    args = build_parser(["manager"]).parse_args(["manager"])
    assert args.imports == ("kubevip.runner",)


def test_no_bytecode_caching_means_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.implementation, "cache_tag", None)
    assert startup.default_path() is None
    with startup.imports() as code:
        make_class("t")
    assert code is not None and code.path is None and not code.save()


def fresh_pattern(tag: str, flags: int = 0) -> re.Pattern[str]:
    """A pattern `re`'s own cache has not seen (it is consulted before the compiler)."""
    re.purge()
    return re.compile(rf"(?P<{tag}>[a-z]+)-\d{{2,4}}|x", flags)


REAL_PATTERNS: list[tuple[str | bytes, int]] = [
    (r"^(?=.{1,253}$)[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*$",
     re.IGNORECASE),
    (r"(?P<key>[^=]+)=(?P<value>.*?)(?:,|$)", 0),
    (r"""\s*(?P<key>[\w\d!#%&'~_`><@,:/\$\*\+\-\.\^\|\)\(\?\}\{\=]+?)\s*=?""", re.ASCII),
    (rb"(__libc_init)|(GLIBC_([0-9.]+))|(libc(_\w+)?\.so(?:\.(\d[0-9.]*))?)", re.ASCII),
    (r"(?<=ab)c(?!d)(a|b)(?(1)x|y)\1", 0),
    (r"(?>a+)b++c*+d?+", 0),
    (r"""\d+ # a number
         \s*(?:px|em)""", re.VERBOSE),
    (r"[^\W\d_]+", re.UNICODE | re.MULTILINE | re.DOTALL),
    (r"\u00e9\N{LATIN SMALL LETTER A WITH GRAVE}[\u0100-\u017f]", re.IGNORECASE),
]


def program_patterns() -> st.SearchStrategy[str]:
    """Small regexes from a grammar: literals, classes, groups, alternation and quantifiers."""
    atom = st.sampled_from(["a", "b", "\\d", "\\w", "\\s", ".", "[a-c]", "[^x]", "\\.", "é"])
    def grow(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map("|".join),
            inner.map(lambda r: f"({r})"), inner.map(lambda r: f"(?:{r})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?", "+?"]))
            .map(lambda t: f"(?:{t[0]}){t[1]}"))
    return st.recursive(atom, grow, max_leaves=8)


@given(program_patterns(), st.sampled_from([0, re.IGNORECASE, re.ASCII, re.MULTILINE | re.DOTALL]),
       st.text(alphabet="abcxé .1_-", max_size=12))
def test_a_pattern_from_a_program_equals_a_fresh_one(pattern: str, flags: int, text: str) -> None:
    # Pattern equality compares the pattern, the flags and the engine's opcodes.
    fresh = re._compiler.compile(pattern, flags)  # type: ignore[attr-defined]
    rebuilt = startup._sre.compile(pattern, *startup._program(pattern, flags))
    assert rebuilt == fresh and rebuilt.groups == fresh.groups and rebuilt.groupindex == fresh.groupindex
    assert [m.span() for m in rebuilt.finditer(text)] == [m.span() for m in fresh.finditer(text)]


@pytest.mark.parametrize(("pattern", "flags"), REAL_PATTERNS)
def test_real_patterns_are_the_same_with_and_without_the_file(tmp_path: Path, pattern: str | bytes,
                                                               flags: int) -> None:
    fresh = re._compiler.compile(pattern, flags)  # type: ignore[attr-defined]
    path = tmp_path / "code.marshal"
    for compiled in (1, 0):  # the first writes the program, the second reads it
        with startup.imports(path) as code:
            re.purge()
            got = re.compile(pattern, flags)
        assert code is not None and code.compiled == compiled
        assert got == fresh and got.groupindex == fresh.groupindex and got.flags == fresh.flags
    assert startup.read(path)[1]


def test_a_program_the_engine_refuses_is_compiled_again(tmp_path: Path) -> None:
    path = tmp_path / "code.marshal"
    with startup.imports(path):
        expected = fresh_pattern("bad")
    code_texts, programs = startup.read(path)
    assert len(programs) == 1
    key = next(iter(programs))
    flags, ops, groups, groupindex, indexgroup = programs[key]
    startup.write(path, code_texts, {key: (flags, [9999, *ops[1:]], groups, groupindex, indexgroup)})
    with startup.imports(path) as code:
        assert fresh_pattern("bad") == expected
    assert code is not None and code.compiled == 1


def test_a_new_pattern_alone_does_not_rewrite_a_file_with_programs(tmp_path: Path) -> None:
    # Patterns built from a set's order are new in every process; they must not make every agent start
    # write the file. A new dataclass text does, and then keeps the new pattern too.
    path = tmp_path / "code.marshal"
    with startup.imports(path):
        fresh_pattern("first")
    before = path.stat().st_mtime_ns, path.stat().st_ino
    with startup.imports(path) as code:
        fresh_pattern("second")
    assert code is not None and code.compiled == 1 and not code.save()
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    with startup.imports(path):
        fresh_pattern("third")
        make_class("w")
    assert sorted(name for *_, names in startup.read(path)[1].values() for name in names if name) == [
        "first", "third"]


def test_debug_patterns_and_parsed_patterns_go_to_re_unchanged(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    with startup.imports(tmp_path / "f") as code:
        re.purge()
        re.compile("ab+", re.DEBUG)
    assert code is not None and code.compiled == 0 and "LITERAL" in capsys.readouterr().out


def test_a_bad_pattern_raises_as_re_does(tmp_path: Path) -> None:
    with startup.imports(tmp_path / "f"), pytest.raises(re.error, match="missing \\)"):
        re.purge()
        re.compile("(ab")
