"""Only kube/ imports aiohttp's client. import-linter (pyproject.toml) forbids aiohttp outside kube/
but for `kubevip.metrics`, whose server is aiohttp's low-level one: this checks that metrics takes nothing
else, and never at module level (aiohttp must come in through kubevip.kube, without the CA bundle)."""

from __future__ import annotations

import ast
from pathlib import Path

import kubevip

SRC = Path(kubevip.__file__).parent


def aiohttp_imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names if a.name.split(".")[0] == "aiohttp"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "aiohttp":
            out += [f"{node.module}.{a.name}" for a in node.names]
    return out


def test_outside_kube_only_metrics_imports_aiohttp_and_only_its_web_server() -> None:
    # metrics imports it where its server starts (and for type checking), never at module level:
    # aiohttp comes in through kubevip.kube (tests/unit/kube/test_import.py).
    found = {
        str(p.relative_to(SRC)): set(names)
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] != "kube" and (names := aiohttp_imports(p))
    }
    assert set(found) == {"metrics.py"}
    server = ("aiohttp.web_server", "aiohttp.web_request", "aiohttp.web_response")
    assert found["metrics.py"] and all(n.startswith(server) for n in found["metrics.py"]), found


def test_kube_does_import_the_client() -> None:
    # the check above would pass vacuously if the scan found nothing anywhere
    assert "aiohttp" in aiohttp_imports(SRC / "kube" / "rest.py")


def test_metrics_imports_aiohttp_only_inside_functions_or_for_type_checking() -> None:
    tree = ast.parse((SRC / "metrics.py").read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert not [n for n in top if "aiohttp" in ast.unparse(n)]
