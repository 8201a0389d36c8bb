"""pyroute2's submodules without its package `__init__`.

`import pyroute2` (and so any `from pyroute2.x import y`, which runs the package first) imports every
family pyroute2 knows: NDB, IPDB, nl80211, nftables, conntrack, devlink, ethtool, IPVS, WireGuard,
plan9... about 160 modules and 0.4-1 s of the agent's start on a 2-core node, of which the agent uses
`pyroute2.iproute` (and `pyroute2.netns` for named namespaces, `pyroute2.dhcp` when DHCP is on).
`submodule(name)` registers the package without running its `__init__` and imports only `name`.
The `__init__` is pure imports (no side effects), so deferring it changes nothing: the first access of
a name it would have defined (`from pyroute2 import IPRoute` in the lab or the tests) runs it then, in
the same module object, and every submodule already imported is reused.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

PACKAGE = "pyroute2"
_lock = threading.Lock()


def submodule(name: str) -> ModuleType:
    """`importlib.import_module(name)` for a pyroute2 submodule, without pyroute2's `__init__`."""
    if not (name == PACKAGE or name.startswith(PACKAGE + ".")):
        raise ValueError(f"not a pyroute2 module: {name!r}")
    with _lock:
        if PACKAGE not in sys.modules:
            _register_package()
    return importlib.import_module(name)


def _register_package() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {PACKAGE!r}", name=PACKAGE)
    pkg = importlib.util.module_from_spec(spec)
    loader = spec.loader
    state = {"ran": False}

    def __getattr__(attr: str) -> Any:  # PEP 562: only called for a name the module lacks
        if attr.startswith("__") or state["ran"]:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {attr!r}")
        if importlib.util.find_spec(f"{PACKAGE}.{attr}") is not None:
            # `from pyroute2 import config` inside pyroute2 asks for a submodule: import it alone.
            return importlib.import_module(f"{PACKAGE}.{attr}")
        with _lock:
            if not state["ran"]:
                state["ran"] = True
                del pkg.__dict__["__getattr__"]
                loader.exec_module(pkg)  # the real __init__, into the same module object
        return getattr(pkg, attr)

    pkg.__dict__["__getattr__"] = __getattr__
    sys.modules[PACKAGE] = pkg


def package_init_ran() -> bool:
    """True when pyroute2's `__init__` has run in this process (for the import-set test)."""
    pkg = sys.modules.get(PACKAGE)
    return pkg is not None and "__getattr__" not in pkg.__dict__ and hasattr(pkg, "IPRoute")
