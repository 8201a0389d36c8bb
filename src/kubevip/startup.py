"""Start-up imports, made cheaper: nothing here changes what a module defines, only how fast it loads.

A restart of every agent is CPU-bound, and an agent's first 0.2 s of CPU is its imports (issue 21,
docs/performance.md). Three costs there are not the modules' own work:

- **The cyclic garbage collector.** Imports allocate hundreds of thousands of objects that all live as
  long as the process, and the collector walked them again and again meanwhile (about 10 ms of CPU).
  It is off inside `imports()`; `kubevip.heap` freezes what was imported right after.
- **Compiling dataclasses' methods.** `@dataclass` writes `__init__`, `__repr__`, `__eq__`, `__hash__`
  and, when frozen, `__setattr__` and `__delattr__` as source text and compiles each with `exec`: 611
  compiles for the agent's modules, 40 ms of CPU on every start, the same text every time. Inside
  `imports()` each text is compiled once per Python version and the code object kept in a marshal file
  next to the package's bytecode (`__pycache__/startup-code.<tag>.marshal`), read back on the next
  start in about 2 ms. The key is a digest of the exact text `dataclasses` would have compiled, and the
  code object is what `compile` gives for that text (with `dataclasses`' own compiler flags), so a class
  is the same with or without the file. A stale, foreign or damaged file is ignored; a read-only
  package directory (or `PYTHONDONTWRITEBYTECODE`) means no file is written. The file is trusted as
  the package's bytecode is: it lives in the same directory, with the same owner. The image writes it at
  build time (Dockerfile, `python -m kubevip.startup`).
- **Compiling regular expressions.** The modules the agent imports compile 111 patterns at import
  (`email`'s header parser, `platform`, `http.cookies`, aiohttp's cookie and websocket helpers, our own
  validators): 14 ms of CPU on every start in `re`'s parser and code generator, written in Python; 1 ms
  with the programs read from the file. Inside
  `imports()` a pattern's program (the list of opcodes `re` hands to its C engine, its flags and
  groups) comes from the same file; `re` then builds the Pattern from it as it always does, and a
  Pattern built from a stored program is equal (`==` compares the opcodes) to a fresh one. Programs are
  kept per exact Python version and regex engine (`sys.version`, `_sre.MAGIC`), since they are what one
  version's code generator writes for its own engine. A program the engine refuses (`_sre.compile`
  checks every opcode) is compiled again. A few patterns are built from a set, in an order that string
  hashing changes in every process (four in `email`'s header parser): they are compiled on every start,
  and do not make a start write the file (only a new dataclass text does, or a file without programs).

The file holds code objects and programs, which only this interpreter's own compilers wrote; a pattern
compiled outside `imports()` (at run time, from a Service's annotation) never touches it.
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import gc
import hashlib
import importlib.util
import marshal
import os
import re
import sys
import tempfile
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# The regex engine's C module (no type stubs): builds a Pattern from a program.
_sre: Any = importlib.import_module("_sre")

# The file names the interpreter (its bytecode magic and marshal format, the exact version and regex
# engine for the programs) and this file's own layout; another Python, or another layout, ignores it.
_TAG = (importlib.util.MAGIC_NUMBER + marshal.version.to_bytes(2, "little")
        + f"|{sys.version}|{_sre.MAGIC}|2".encode())
# What `re` hands its C engine for one pattern: flags, opcodes, group count, name -> group, group -> name.
Program = tuple[int, list[int], int, dict[str, int], tuple[str | None, ...]]
# More entries than this (texts of old source versions accumulate while developing): keep only the
# ones this process used when writing the file again.
MAX_ENTRIES = 4000


def default_path() -> Path | None:
    """Where the code objects live: next to this package's bytecode (honours `sys.pycache_prefix`);
    None for an interpreter without bytecode caching."""
    try:
        pyc = Path(importlib.util.cache_from_source(__file__))
    except NotImplementedError:  # sys.implementation.cache_tag is None
        return None
    return pyc.parent / f"startup-code.{sys.implementation.cache_tag}.marshal"


def digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode(), digest_size=16).digest()


def read(path: Path) -> tuple[dict[bytes, types.CodeType], dict[bytes, Program]]:
    """The code objects and regex programs in `path`; both empty when it is missing, damaged or from
    another interpreter. Entries of the wrong shape are dropped (a program is checked again by the
    regex engine when used)."""
    try:
        tag, code, programs = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}, {}
    if tag != _TAG or not isinstance(code, dict) or not isinstance(programs, dict):
        return {}, {}
    return ({k: v for k, v in code.items() if isinstance(k, bytes) and isinstance(v, types.CodeType)},
            {k: v for k, v in programs.items() if isinstance(k, bytes) and _program_shaped(v)})


def _program_shaped(v: object) -> bool:
    return (isinstance(v, tuple) and len(v) == 5 and isinstance(v[0], int) and isinstance(v[1], list)
            and isinstance(v[2], int) and isinstance(v[3], dict) and isinstance(v[4], tuple))


def write(path: Path, code: dict[bytes, types.CodeType], programs: dict[bytes, Program]) -> bool:
    """Replace `path` atomically (agents starting together each write a whole file); False when the
    directory cannot be written to or bytecode writing is off."""
    if sys.dont_write_bytecode:
        return False
    try:
        data = marshal.dumps((_TAG, code, programs))
    except ValueError:  # something marshal cannot write: start without the file, as with no directory
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.fchmod(fd, 0o644)  # readable like the bytecode beside it (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


class CodeCache:
    """Stands in, while installed, for `exec` inside `dataclasses` and for the pattern compiler of `re`:
    compiles a text or a pattern once, then reuses what it gave."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known, self.programs = read(path) if path is not None else ({}, {})
        self.used: dict[bytes, types.CodeType] = {}
        self.used_programs: dict[bytes, Program] = {}
        self.compiled = 0  # texts and patterns not found in the file
        self.compiled_texts = 0  # of which dataclass texts, which are the same in every process
        self.had_programs = bool(self.programs)

    def exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if isinstance(source, str):
            key = digest(source)
            code = self.known.get(key)
            if code is None:
                # dont_inherit: the flags of `dataclasses`' own `exec`, not this module's __future__ ones
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self.known[key] = code
                self.compiled += 1
                self.compiled_texts += 1
            self.used[key] = code
            source = code
        builtins.exec(source, globals, locals)

    def pattern(self, p: Any, flags: int = 0) -> Any:
        """`re._compiler.compile`: a string pattern's program from the file, else compiled and kept."""
        if not isinstance(p, (str, bytes)) or flags & re.DEBUG:
            return _compile_pattern(p, flags)
        key = digest(f"re\0{flags}\0{p!r}")
        program = self.programs.get(key)
        if program is not None:
            try:
                compiled = _sre.compile(p, *program)
            except (RuntimeError, TypeError, ValueError, OverflowError):  # refused by the engine
                program = None
        if program is None:
            program = _program(p, flags)
            compiled = _sre.compile(p, *program)
            self.programs[key] = program
            self.compiled += 1
        self.used_programs[key] = program
        return compiled

    def save(self) -> bool:
        """Write the file when this process compiled a dataclass text it did not have, or patterns for a
        file that had none (a pattern built from a set is new in every process: it alone does not)."""
        if self.path is None or not (self.compiled_texts or (self.compiled and not self.had_programs)):
            return False
        if len(self.known) + len(self.programs) <= MAX_ENTRIES:
            return write(self.path, self.known, self.programs)
        return write(self.path, self.used, self.used_programs)


_re_compiler: Any = getattr(re, "_compiler", None)  # `re`'s pattern compiler, in Python (3.11+)
_compile_pattern: Any = getattr(_re_compiler, "compile", None)


def _program(pattern: str | bytes, flags: int) -> Program:
    """What `re._compiler.compile` hands `_sre.compile` after the pattern itself."""
    parsed = _re_compiler._parser.parse(pattern, flags)
    # Opcodes are int subclasses with names (for `re.DEBUG`); the engine and marshal take plain ints.
    code = [int(op) for op in _re_compiler._code(parsed, flags)]
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return (int(flags | parsed.state.flags), code, parsed.state.groups - 1, groupindex, tuple(indexgroup))


@contextlib.contextmanager
def imports(path: Path | None = None, *, cache: bool = True) -> Iterator[CodeCache | None]:
    """Import inside this: the collector is off, and dataclasses' methods and regex programs come from
    the code file.

    Restores all of it on exit (also on an exception: the agent's import errors surface unchanged)."""
    collecting = gc.isenabled()
    gc.disable()
    code = CodeCache(path or default_path()) if cache else None
    # `dataclasses` looks `exec` up in its module globals before the builtins, `re` its compiler as an
    # attribute of `re._compiler`; a shim already in place belongs to an outer `imports()`, which keeps it.
    shims: list[tuple[Any, str, Any]] = []
    if code is not None:
        if "exec" not in vars(dataclasses):
            shims.append((dataclasses, "exec", None))
            dataclasses.exec = code.exec  # type: ignore[attr-defined]
        if _compile_pattern is not None and _re_compiler.compile is _compile_pattern:
            shims.append((_re_compiler, "compile", _compile_pattern))
            _re_compiler.compile = code.pattern
    try:
        yield code
    finally:
        for owner, name, original in reversed(shims):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        if code is not None:
            code.save()
        if collecting:
            gc.enable()


def warm(modules: Iterable[str]) -> int:
    """Import `modules` under `imports()` and write the file; the number of texts and patterns compiled."""
    with imports() as code:
        for name in modules:
            importlib.import_module(name)
    assert code is not None
    return code.compiled


# What `python -m kubevip.startup` imports (the image build): the image's commands and what `manager`
# runs. Other commands' texts are compiled when first run (and kept where the package is writable).
WARM = (
    "kubevip.cli", "kubevip.commands.manager", "kubevip.commands.manifest", "kubevip.runner",
    "kubevip.controlplane.main",
)

if __name__ == "__main__":
    n = warm(WARM)
    print(f"{default_path() or 'no bytecode cache'}: {n} dataclass method texts and regex patterns compiled")
