"""Start-up imports, made cheaper: nothing here changes what a module defines, only how fast it loads.

A restart of every agent is CPU-bound, and an agent's first 0.2 s of CPU is its imports (issue 21,
docs/performance.md). Two costs there are not the modules' own work:

- **The cyclic garbage collector.** Imports allocate hundreds of thousands of objects that all live as
  long as the process, and the collector walked them again and again meanwhile (about 10 ms of CPU).
  It is off inside `imports()`; `kubevip.heap` freezes what was imported right after.
- **Compiling dataclasses' methods.** `@dataclass` writes `__init__`, `__repr__`, `__eq__`, `__hash__`
  and, when frozen, `__setattr__` and `__delattr__` as source text and compiles each with `exec`: 611
  compiles for the agent's modules, 40 ms of CPU on every start, the same text every time. Inside
  `imports()` each text is compiled once per Python version and the code object kept in a marshal file
  next to the package's bytecode (`__pycache__/dataclass-code.<tag>.marshal`), read back on the next
  start in about 2 ms. The key is a digest of the exact text `dataclasses` would have compiled, and the
  code object is what `compile` gives for that text (with `dataclasses`' own compiler flags), so a class
  is the same with or without the file. A stale, foreign or damaged file is ignored; a read-only
  package directory (or `PYTHONDONTWRITEBYTECODE`) means no file is written. The file is trusted as
  the package's bytecode is: it lives in the same directory, with the same owner. The image writes it at
  build time (Dockerfile, `python -m kubevip.startup`).
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
import sys
import tempfile
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# The file names the interpreter (its bytecode magic and marshal format); another Python ignores it.
_TAG = importlib.util.MAGIC_NUMBER + marshal.version.to_bytes(2, "little")
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
    return pyc.parent / f"dataclass-code.{sys.implementation.cache_tag}.marshal"


def digest(source: str) -> bytes:
    return hashlib.blake2b(source.encode(), digest_size=16).digest()


def read(path: Path) -> dict[bytes, types.CodeType]:
    """The code objects in `path`; empty when it is missing, damaged or from another interpreter."""
    try:
        tag, entries = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return {}
    if tag != _TAG or not isinstance(entries, dict):
        return {}
    return {k: v for k, v in entries.items() if isinstance(k, bytes) and isinstance(v, types.CodeType)}


def write(path: Path, entries: dict[bytes, types.CodeType]) -> bool:
    """Replace `path` atomically (agents starting together each write a whole file); False when the
    directory cannot be written to or bytecode writing is off."""
    if sys.dont_write_bytecode:
        return False
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.fchmod(fd, 0o644)  # readable like the bytecode beside it (mkstemp makes it 0600)
        with os.fdopen(fd, "wb") as f:
            f.write(marshal.dumps((_TAG, entries)))
        os.replace(tmp, path)
        return True
    except OSError:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return False


class CodeCache:
    """Stands in for `exec` inside `dataclasses` while installed: compiles a text once, then reuses."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.known = read(path) if path is not None else {}
        self.used: dict[bytes, types.CodeType] = {}
        self.compiled = 0  # texts not found in the file

    def exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if isinstance(source, str):
            key = digest(source)
            code = self.known.get(key)
            if code is None:
                # dont_inherit: the flags of `dataclasses`' own `exec`, not this module's __future__ ones
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self.known[key] = code
                self.compiled += 1
            self.used[key] = code
            source = code
        builtins.exec(source, globals, locals)

    def save(self) -> bool:
        """Write the file when this process compiled something it did not have."""
        if self.path is None or not self.compiled:
            return False
        entries = self.known if len(self.known) <= MAX_ENTRIES else self.used
        return write(self.path, entries)


@contextlib.contextmanager
def imports(path: Path | None = None, *, cache: bool = True) -> Iterator[CodeCache | None]:
    """Import inside this: the collector is off and dataclasses' methods come from the code file.

    Restores both on exit (also on an exception: the agent's import errors surface unchanged)."""
    collecting = gc.isenabled()
    gc.disable()
    code = CodeCache(path or default_path()) if cache else None
    shadowed = "exec" in vars(dataclasses)
    if code is not None and not shadowed:
        # `dataclasses` looks `exec` up in its module globals before the builtins
        dataclasses.exec = code.exec  # type: ignore[attr-defined]
    try:
        yield code
    finally:
        if code is not None and not shadowed:
            del dataclasses.exec  # type: ignore[attr-defined]
            code.save()
        if collecting:
            gc.enable()


def warm(modules: Iterable[str]) -> int:
    """Import `modules` under `imports()` and write the file; the number of texts compiled."""
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
    print(f"{default_path() or 'no bytecode cache'}: {n} dataclass method texts compiled")
