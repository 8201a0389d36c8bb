"""kubevip.yamlout read by the real Go reader: kubectl applies a ConfigMap whose values look like numbers,
booleans and null, and the API server stores every one as the string written."""

from __future__ import annotations

import json
import secrets

import pytest

from kubevip import yamlout
from kubevip.lab.controlplane import ControlPlane

pytestmark = pytest.mark.cluster

TRICKY = ["645e73", "1e3", "1_000", "0x1F", "0o17", "0b101", "017", "1.5", ".5", "-2", "+3", "yes", "off",
          "null", "~", "true", ".inf", ".nan", "", "10.0.0.1", "2001:db8::1", "x1e3"]


def test_kubectl_reads_every_string_back_as_written(control_plane: ControlPlane) -> None:
    name = f"kvt-yaml-{secrets.token_hex(3)}"
    data = {f"k{i}": v for i, v in enumerate(TRICKY)}
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": name, "namespace": "default", "labels": {"kvt-tag": "645e73"}}, "data": data}
    control_plane.kubectl_run("apply", "-f", "-", stdin=yamlout.dump(cm))
    try:
        out = control_plane.kubectl_run("get", "configmap", "-n", "default", name, "-o", "json")
        stored = json.loads(out)
        assert stored["data"] == data
        assert stored["metadata"]["labels"] == {"kvt-tag": "645e73"}
    finally:
        control_plane.kubectl_run("delete", "configmap", "-n", "default", name)
