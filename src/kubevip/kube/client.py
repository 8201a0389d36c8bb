"""The agent's API client: in-cluster credentials when running in a Pod, else a kubeconfig file."""

from __future__ import annotations

import os
from pathlib import Path

from kubernetes_asyncio import client, config

from kubevip.errors import ConfigError


async def connect(kubeconfig: str = "") -> client.ApiClient:
    """An ApiClient from `kubeconfig` (or KUBECONFIG), else in-cluster; the caller closes it."""
    path = kubeconfig or os.environ.get("KUBECONFIG", "")
    if path:
        if not Path(path).exists():  # noqa: ASYNC240 (start-up, once)
            raise ConfigError("KUBECONFIG", path, "the file does not exist; point it at a kubeconfig")
        api: client.ApiClient = await config.new_client_from_config(config_file=path)
        return api
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_incluster_config()  # type: ignore[no-untyped-call]
        return client.ApiClient()
    default = str(Path.home() / ".kube" / "config")
    if Path(default).exists():  # noqa: ASYNC240 (start-up, once)
        api = await config.new_client_from_config(config_file=default)
        return api
    raise ConfigError(
        "KUBECONFIG", "", "not running in a cluster and no kubeconfig: set KUBECONFIG (or kubeconfig)"
    )
