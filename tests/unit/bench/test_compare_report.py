"""Rows, ratio table and docs section of the side-by-side benchmark (bench/compare/report.py)."""

from pathlib import Path

from compare.report import BEGIN, END, figure, table, update_doc


def test_figure_and_table() -> None:
    f = figure("x", "Service created", "s", {"kubevip": [0.1, 0.2, float("nan")], "kube-vip": [0.4, 0.4]}, {})
    assert f["summary"]["kubevip"]["n"] == 2
    assert f["failed_runs"]["kubevip"] == 1
    assert f["ratio"]["median"] is not None and abs(f["ratio"]["median"] - 0.375) < 1e-9
    assert f["samples"]["kubevip"][2] is None
    row = table([f]).splitlines()[-1]
    assert "150 ms" in row and "400 ms" in row and "0.38" in row and "1 failed" in row


def test_not_available_is_reported_not_crashing() -> None:
    f = figure("y", "BGP", "s", {"kube-vip": [1.0]}, {"kubevip": "manager not landed"})
    assert "not available" in table([f])
    assert f["ratio"]["median"] is None


def test_doc_section_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\n## Other\n\nkeep me\n")
    update_doc(doc, "first")
    update_doc(doc, "second")
    text = doc.read_text()
    assert "keep me" in text and "second" in text and "first" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1

