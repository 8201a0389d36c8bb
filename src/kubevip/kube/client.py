"""The agent's API client: in-cluster credentials when running in a Pod, else a kubeconfig file."""

from __future__ import annotations

import os
from pathlib import Path

from kubevip.errors import ConfigError
from kubevip.kube.kubeconfig import load_incluster, load_kubeconfig
from kubevip.kube.rest import Access, RestClient


def access(kubeconfig: str = "") -> Access:
    """Access from `kubeconfig` (or KUBECONFIG), else in-cluster, else ~/.kube/config."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "")
    if path:
        if not Path(path).exists():
            raise ConfigError("KUBECONFIG", path, "the file does not exist; point it at a kubeconfig")
        return load_kubeconfig(path)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return load_incluster()
    default = Path.home() / ".kube" / "config"
    if default.exists():
        return load_kubeconfig(default)
    raise ConfigError(
        "KUBECONFIG", "", "not running in a cluster and no kubeconfig: set KUBECONFIG (or kubeconfig)"
    )


async def connect(kubeconfig: str | Path = "") -> RestClient:
    """A RestClient from `kubeconfig` (or KUBECONFIG), else in-cluster; the caller closes it."""
    return RestClient(access(str(kubeconfig)))
