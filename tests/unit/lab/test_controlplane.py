"""Single-stack control planes: CIDRs of one family, the node CIDR mask flag kube-controller-manager takes."""

from __future__ import annotations

import pytest

from kubevip.lab import controlplane


@pytest.mark.parametrize("families", [(4, 6), (4,), (6,)])
def test_cidrs_of_keep_only_the_families(families: tuple[int, ...]) -> None:
    services, clusters = controlplane.cidrs_of(families)
    assert [c.version for c in services] == [c.version for c in clusters] == list(families)


def test_single_stack_uses_the_plain_mask_flag() -> None:
    # kube-controller-manager refuses --node-cidr-mask-size-ipv4/-ipv6 on a single-stack cluster.
    assert controlplane.node_cidr_mask_args(controlplane.cidrs_of((4,))[1]) == ["--node-cidr-mask-size=24"]
    assert controlplane.node_cidr_mask_args(controlplane.cidrs_of((6,))[1]) == ["--node-cidr-mask-size=64"]
    assert controlplane.node_cidr_mask_args(controlplane.DEFAULT_CLUSTER_CIDRS) == [
        "--node-cidr-mask-size-ipv4=24", "--node-cidr-mask-size-ipv6=64"]
