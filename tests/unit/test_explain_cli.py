"""`kubevip explain` end to end through cli.main: JSON contract, options, and exit 2 on every input error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubevip.cli import main
from tests.unit.core import builders as b

SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-scenario.yaml"

SEED_JSON = {
    "service": "shop/web",
    "families": ["IPv4"],
    "vips": [{"address": "192.0.2.10", "family": "IPv4", "source": "annotation"}],
    "rejected": [],
    "announce": True,
    "reason": "",
    "endpoints": {
        "IPv4": [
            {"address": "10.244.1.5", "node": "node-a", "ready": True, "serving": True, "terminating": False},
            {"address": "10.244.2.7", "node": "node-b", "ready": True, "serving": True, "terminating": False},
        ]
    },
}


def explain(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    rc = main(["explain", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def write(path: Path, *docs: Any) -> str:
    path.write_text(yaml.safe_dump_all(list(docs)))
    return str(path)


def test_seed_example_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = explain(capsys, "-f", str(SEED))
    assert rc == 0, err
    assert json.loads(out) == SEED_JSON


def test_seed_example_with_node(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = explain(capsys, "-f", str(SEED), "--node", "node-c")
    assert rc == 0
    doc = json.loads(out)
    assert doc["node"] == {"name": "node-c", "families": {"IPv4": {"announce": False,
                                                                   "reason": "no-local-endpoints"}}}
    assert list(doc) == [*SEED_JSON, "node"]


def test_seed_example_legacy_endpoints_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = explain(capsys, "-f", str(SEED), "--endpoints", "legacy")
    assert rc == 0 and json.loads(out)["endpoints"] == SEED_JSON["endpoints"]
    rc, out, _ = explain(capsys, "-f", str(SEED), "-o", "text", "--node", "node-a")
    assert rc == 0
    assert "Service shop/web" in out and "192.0.2.10" in out and "fd00" not in out
    assert "IPv4  announces" in out


def test_kind_list_json_file_default_namespace_other_kinds_ignored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    svc = b.service(families=["IPv6", "IPv4"], policy="PreferDualStack",
                    lb_ips="2001:db8::1, 192.0.2.1, nope!")
    del svc["metadata"]["namespace"]
    slc = b.endpointslice("web-1", "IPv6", [b.ep("fd00::1", node="n1")])
    del slc["metadata"]["namespace"]
    doc = {"apiVersion": "v1", "kind": "List",
           "items": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, svc, slc]}
    path = tmp_path / "in.json"
    path.write_text(json.dumps(doc))
    rc, out, err = explain(capsys, "-f", str(path), "--node", "n1")
    assert rc == 0, err
    got = json.loads(out)
    assert got["service"] == "default/web"
    assert got["families"] == ["IPv6", "IPv4"]
    assert [v["address"] for v in got["vips"]] == ["2001:db8::1", "192.0.2.1"]
    assert got["rejected"] == [{"address": "nope!", "reason": "not-an-ip"}]
    assert list(got["endpoints"]) == ["IPv6", "IPv4"] and got["endpoints"]["IPv4"] == []
    assert got["node"]["families"] == {"IPv6": {"announce": True, "reason": ""},
                                       "IPv4": {"announce": True, "reason": ""}}


def test_several_files_and_auto_legacy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "svc.yaml", b.service(families=["IPv4"], lb_ip="192.0.2.5"))
    c = write(tmp_path / "eps.yaml", b.endpoints([("10.0.0.1", "n1"), ("fd00::1", "n1")]))
    rc, out, _ = explain(capsys, "-f", a, "-f", c)
    assert rc == 0
    got = json.loads(out)
    assert got["vips"] == [{"address": "192.0.2.5", "family": "IPv4", "source": "spec"}]
    assert [e["address"] for e in got["endpoints"]["IPv4"]] == ["10.0.0.1"]


def test_verdict_not_announced_still_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path / "s.yaml", b.service(families=["IPv4", "IPv6"], policy="RequireDualStack",
                                             lb_ips="192.0.2.1"))
    rc, out, _ = explain(capsys, "-f", f, "--node", "n1")
    got = json.loads(out)
    assert rc == 0 and got["announce"] is False and got["reason"] == "require-dual-stack-unmet"
    assert all(not s["announce"] for s in got["node"]["families"].values())


BAD_CASES: dict[str, tuple[str, str]] = {
    # name: (file content, what the one error line must contain besides the file name)
    "broken-yaml": ("kind: Service\nmetadata: {name: [\n", "document 1"),
    # PyYAML's own message quotes the offending line: a Secret's data must not reach the error
    "broken-secret": ("kind: Secret\ndata:\n  password: s3cr3t-pw: [\n",
                      "document 1: not valid YAML/JSON: mapping values are not allowed here at line 3"),
    "no-service": (yaml.safe_dump(b.endpoints([("10.0.0.1", "n1")])), "no Service"),
    "two-services": (yaml.safe_dump_all([b.service("a"), b.service("b")]), "document 2"),
    "malformed": (yaml.safe_dump_all([b.endpoints([]), b.service(families=["IPv9"])]),
                  "document 2: Service default/web: spec.ipFamilies[0]='IPv9'"),
    "bad-slice": (yaml.safe_dump_all([b.service(), b.endpointslice("web-a", "IPv4", [b.ep("10.1")])]),
                  "document 2: EndpointSlice default/web-a: endpoints[0].addresses[0]='10.1'"),
    "duplicate": (yaml.safe_dump_all([b.service(), b.endpoints([]), b.endpoints([])]),
                  "document 3: Endpoints default/web given twice (first in"),
    "not-an-object": ("- just\n- a list\n", "document 1"),
    "no-kind": (yaml.safe_dump({"metadata": {"name": "x"}}), "document 1: object has no kind"),
    "bad-list-item": (yaml.safe_dump({"kind": "List", "items": [b.service(), {"kind": "Service"}]}),
                      "document 1 item 2"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_input_errors_exit_2_with_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    content, needle = BAD_CASES[case]
    path = tmp_path / f"{case}.yaml"
    path.write_text(content)
    rc, out, err = explain(capsys, "-f", str(path))
    assert rc == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and needle in lines[0], lines[0]
    assert lines[0].startswith("kubevip explain: ")
    assert "s3cr3t" not in err


def test_unreadable_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yaml"
    rc, _, err = explain(capsys, "-f", str(missing))
    assert rc == 2 and str(missing) in err and "cannot read" in err and len(err.strip().splitlines()) == 1
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    rc, _, err = explain(capsys, "-f", str(binary))
    assert rc == 2 and str(binary) in err and len(err.strip().splitlines()) == 1


def test_same_object_in_two_files_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write(tmp_path / "a.yaml", b.service())
    rc, _, err = explain(capsys, "-f", a, "-f", a)
    assert rc == 2 and "given twice" in err


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(docs=st.permutations(list(yaml.safe_load_all(SEED.read_text()))))
def test_document_order_does_not_matter(
    docs: list[Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "perm.yaml", *docs)
    for mode in ("auto", "legacy"):
        rc, out, _ = explain(capsys, "-f", path, "--node", "node-a", "--endpoints", mode)
        got = json.loads(out)
        del got["node"]
        assert rc == 0 and got == SEED_JSON


def test_node_placement_with_node_objects(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    svc = b.service(lb_ips="192.0.2.10", annotations={"kube-vip.io/node-selector": "rack=r1"})
    nodes = [
        {"kind": "Node", "metadata": {"name": "n1", "labels": {"rack": "r1"}}},
        {"kind": "Node", "metadata": {"name": "n2", "labels": {"rack": "r2"}}},
        {"kind": "Node", "metadata": {"name": "n3", "labels": {"rack": "r1"}},
         "spec": {"unschedulable": True}},
    ]
    f = write(tmp_path / "in.yaml", svc, *nodes)
    rc, out, err = explain(capsys, "-f", f, "--node", "n2")
    assert rc == 0, err
    got = json.loads(out)["node"]["placement"]["192.0.2.10"]
    assert (got["eligible"], got["reason"]) == (False, "node-selector-service")
    assert "rack=r1" in got["detail"]
    rc, out, _ = explain(capsys, "-f", f, "--node", "n3", "--drain-on-cordon")
    assert json.loads(out)["node"]["placement"]["192.0.2.10"]["reason"] == "node-cordoned"
    rc, out, _ = explain(capsys, "-f", f, "--node", "n3")
    want = {"eligible": True, "reason": "", "detail": ""}
    assert json.loads(out)["node"]["placement"]["192.0.2.10"] == want
    rc, out, _ = explain(capsys, "-f", f, "--node", "n1", "-o", "text")
    assert "may hold 192.0.2.10" in out
    rc, out, err = explain(capsys, "-f", f, "--node", "n1", "--vip-node-selector", "rack in (")
    assert rc == 2 and "--vip-node-selector" in err


def test_node_placement_of_a_dhcp_vip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A family asking DHCP is judged before any lease, by the same rules (docs/dhcp.md)."""
    svc = b.service(lb_ips="0.0.0.0", annotations={"kube-vip.io/node-selector": "rack=r1"})
    nodes = [{"kind": "Node", "metadata": {"name": "n1", "labels": {"rack": "r1"}}},
             {"kind": "Node", "metadata": {"name": "n2", "labels": {"rack": "r2"}}}]
    f = write(tmp_path / "in.yaml", svc, *nodes)
    rc, out, err = explain(capsys, "-f", f, "--node", "n2")
    assert rc == 0, err
    got = json.loads(out)["node"]["placement"]
    assert list(got) == ["dhcp:IPv4"]
    assert (got["dhcp:IPv4"]["eligible"], got["dhcp:IPv4"]["reason"]) == (False, "node-selector-service")
    rc, out, _ = explain(capsys, "-f", f, "--node", "n1")
    assert json.loads(out)["node"]["placement"]["dhcp:IPv4"]["eligible"] is True
