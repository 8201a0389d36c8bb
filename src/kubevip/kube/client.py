"""The agent's API client: which kubeconfig (kube-vip's lookup order), or in-cluster credentials."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from kubevip.errors import ConfigError
from kubevip.kube.kubeconfig import load_incluster, load_kubeconfig
from kubevip.kube.rest import Access, RestClient

log = logging.getLogger(__name__)

# kubeadm's admin kubeconfig: what kube-vip's control-plane static pod mounts (and sets no KUBECONFIG for).
ADMIN_CONF = "/etc/kubernetes/admin.conf"
IN_CLUSTER = ""


def kubeconfig_path(
    explicit: str, k8s_config_file: str, env: Mapping[str, str], exists: Callable[[str], bool]
) -> str:
    """The kubeconfig to use, or IN_CLUSTER ("").

    1. kubevip's `kubeconfig` setting / KUBECONFIG: must exist (an explicit choice that is wrong is an error);
    2. then kube-vip's order (pkg/manager NewManager): `k8s_config_file` if the file exists,
       /etc/kubernetes/admin.conf, $HOME/.kube/config, else in-cluster credentials.
    """
    path = explicit or env.get("KUBECONFIG", "")
    if path:
        if not exists(path):
            raise ConfigError("kubeconfig" if explicit else "KUBECONFIG", path,
                              "the file does not exist; point it at a kubeconfig")
        return path
    home = env.get("HOME", "")
    candidates = (k8s_config_file, ADMIN_CONF, os.path.join(home, ".kube", "config") if home else "")
    for candidate in candidates:
        if candidate and exists(candidate):
            return candidate
    if k8s_config_file:
        log.warning("k8s_config_file %s does not exist: using in-cluster credentials", k8s_config_file)
    return IN_CLUSTER


def access(kubeconfig: str = "", k8s_config_file: str = "") -> Access:
    """Access from the kubeconfig `kubeconfig_path` picks, else in-cluster."""
    path = kubeconfig_path(kubeconfig, k8s_config_file, os.environ, os.path.isfile)
    if path:
        log.info("API credentials from %s", path)
        return load_kubeconfig(path)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return load_incluster()
    raise ConfigError(
        "KUBECONFIG", "", "not running in a cluster and no kubeconfig: set KUBECONFIG (or kubeconfig or "
        f"k8s_config_file), or provide {ADMIN_CONF} or ~/.kube/config"
    )


async def connect(kubeconfig: str | Path = "", k8s_config_file: str = "") -> RestClient:
    """A RestClient from the kubeconfig `kubeconfig_path` picks, else in-cluster; the caller closes it."""
    return RestClient(access(str(kubeconfig), k8s_config_file))


async def connect_pair(
    kubeconfig: str | Path = "", k8s_config_file: str = ""
) -> tuple[RestClient, RestClient]:
    """Two RestClients over one reading of the credentials (one kubeconfig parse, one TLS context): the
    agent's, and its elector's, whose own connections keep Lease renewals from queueing behind the
    agent's requests. The caller closes both."""
    creds = access(str(kubeconfig), k8s_config_file)
    return RestClient(creds), RestClient(creds)
