"""kubevip.startup: imports without the collector, dataclasses' methods compiled once per interpreter."""

from __future__ import annotations

import dataclasses
import gc
import os
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
    with pytest.raises(RuntimeError), startup.imports(tmp_path / "f"):
        assert not gc.isenabled() and "exec" in vars(dataclasses)
        raise RuntimeError("an import failed")
    assert gc.isenabled() and "exec" not in vars(dataclasses)
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
        assert "exec" in vars(dataclasses)
    assert outer is not None and outer.compiled > 0
    assert (tmp_path / "outer").exists() and not (tmp_path / "inner").exists()


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x00" * 64])
def test_a_damaged_file_is_ignored_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "code.marshal"
    path.write_bytes(content)
    with startup.imports(path) as code:
        assert behaviour(make_class("d")) == behaviour(make_class("d"))
    assert code is not None and code.compiled > 0
    assert startup.read(path)  # rewritten whole


def test_a_file_of_another_interpreter_is_ignored(tmp_path: Path) -> None:
    import marshal

    path = tmp_path / "code.marshal"
    src = "def __create_fn__():\n  def f(self): return 1\n  return f\n"
    path.write_bytes(marshal.dumps((b"other", {startup.digest(src): compile(src, "<s>", "exec")})))
    assert startup.read(path) == {}


def test_a_read_only_directory_or_no_bytecode_writes_nothing(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    with startup.imports(tmp_path / "f") as code:
        make_class("r")
    assert code is not None and code.compiled > 0 and not code.save()
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    assert not startup.write(blocked / "f", {})  # a parent that is a file: OSError, no exception
    assert os.listdir(tmp_path) == ["file-not-dir"]  # and no temporary file left


@given(st.text(), st.text())
def test_digest_tells_texts_apart(a: str, b: str) -> None:
    assert (startup.digest(a) == startup.digest(b)) == (a == b)


def test_the_agents_start_reads_the_file_a_warm_run_wrote(tmp_path: Path) -> None:
    # Two fresh interpreters as two agent starts: the first compiles and writes, the second compiles
    # nothing. The file lives where kubevip.startup.default_path() says, moved here by pycache_prefix.
    code = textwrap.dedent("""
        import sys
        from kubevip import startup
        with startup.imports() as c:
            import kubevip.runner
        path = startup.default_path()
        print(c.compiled, path is not None and path.is_relative_to(sys.pycache_prefix))
    """)
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(tmp_path)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert int(runs[0][0]) > 300 and runs[0][1] == "True"  # the agent's modules: hundreds of texts
    assert runs[1] == ["0", "True"]


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
