"""The one Kubernetes boundary: REST client, kubeconfig and in-cluster credentials, list/watch, HTTP
error mapping and the writers (status, annotations, Events).

Rule: the only room that talks HTTP to the API server; it parses nothing into decisions (raw JSON in,
raw JSON out) and knows no election, kernel or BGP.

This package imports aiohttp first, without the system CA bundle (`_import_aiohttp`): every submodule
and `kubevip.metrics` import it after this.
"""

from __future__ import annotations

import os
import sys

# OpenSSL's environment variables for its default verify paths (X509_STORE_set_default_paths).
_CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR")


def _import_aiohttp() -> None:
    """Import aiohttp with OpenSSL's default CA file and directory pointed at nothing, then restore them.

    aiohttp.connector builds two default TLS contexts when it is imported, and each loads the system
    CA bundle: 30-40 ms of CPU and 2 MB of RSS per process, about 13 % of the agent's imports, paid
    by every agent on every start (issue 21: start -> serving). kubevip never uses them: the REST
    client passes its own context (the cluster's CA, kube/kubeconfig.py) on every https request, and
    plain http has none. The variables are read when a context loads its default paths, so they are
    set only around this import; a context built later (kubeconfig without a CA: the system's
    bundle) sees the process's own values. tests/unit/kube/test_import.py checks both.
    """
    if "aiohttp.connector" in sys.modules:  # imported before kubevip.kube: nothing to save
        return
    saved = {name: os.environ.get(name) for name in _CA_ENV}
    try:
        for name in _CA_ENV:
            os.environ[name] = os.devnull
        import aiohttp  # noqa: F401  (the import is the point)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


_import_aiohttp()
