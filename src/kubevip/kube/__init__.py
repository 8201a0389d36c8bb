"""The one Kubernetes boundary: REST client, kubeconfig and in-cluster credentials, list/watch, HTTP
error mapping and the writers (status, annotations, Events).

Rule: the only room that talks HTTP to the API server; it parses nothing into decisions (raw JSON in,
raw JSON out) and knows no election, kernel or BGP.

This package imports aiohttp first, without the system CA bundle and with frozenlist's pure-Python list
(`_import_aiohttp`): every submodule and `kubevip.metrics` import it after this. It also makes asyncio's
TLS read buffer smaller (`_small_tls_reads`).
"""

from __future__ import annotations

import asyncio.sslproto
import os
import sys

# OpenSSL's environment variables for its default verify paths (X509_STORE_set_default_paths).
_CA_ENV = ("SSL_CERT_FILE", "SSL_CERT_DIR")
# frozenlist's switch to its pure-Python FrozenList (read once, when frozenlist is imported).
_FROZENLIST_ENV = "FROZENLIST_NO_EXTENSIONS"


def _import_aiohttp() -> None:
    """Import aiohttp with OpenSSL's default CA file and directory pointed at nothing, then restore them.

    aiohttp.connector builds two default TLS contexts when it is imported, and each loads the system
    CA bundle: 30-40 ms of CPU and 2 MB of RSS per process, about 13 % of the agent's imports, paid
    by every agent on every start (issue 21: start -> serving). kubevip never uses them: the REST
    client passes its own context (the cluster's CA, kube/kubeconfig.py) on every https request, and
    plain http has none. The variables are read when a context loads its default paths, so they are
    set only around this import; a context built later (kubeconfig without a CA: the system's
    bundle) sees the process's own values. tests/unit/kube/test_import.py checks both.

    frozenlist (through aiosignal: the client's tracing signals, a list built once per session) is
    imported with its pure-Python class: its C extension is built as C++ and loads libstdc++ and
    libgcc_s, 1.1 MB of every agent's RSS for that one list (issue 21: RSS at 1000 Services). An
    operator's own FROZENLIST_NO_EXTENSIONS is kept; the variable is restored after the import too.
    """
    if "aiohttp.connector" in sys.modules:  # imported before kubevip.kube: nothing to save
        return
    names = (*_CA_ENV, _FROZENLIST_ENV)
    saved = {name: os.environ.get(name) for name in names}
    try:
        for name in _CA_ENV:
            os.environ[name] = os.devnull
        if saved[_FROZENLIST_ENV] is None:
            os.environ[_FROZENLIST_ENV] = "1"
        import aiohttp  # noqa: F401  (the import is the point)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# Bytes asyncio reads from a TLS connection at a time (see _small_tls_reads).
TLS_READ_BUFFER = 32 * 1024


def _small_tls_reads() -> None:
    """Read TLS connections through a 32 KiB buffer instead of asyncio's 256 KiB.

    asyncio gives every TLS connection a read buffer of `SSLProtocol.max_size` bytes (256 KiB in Python
    3.11 to 3.13), zero-filled when the connection opens, so resident as long as it lives. An agent keeps
    7 to 15 connections to its API server (one per watch, and the request pool): 2-4 MB of an agent whose
    whole budget at 1000 Services is 54 MB (issue 21). 32 KiB holds two full TLS records; a 3 MB list
    then takes about 100 reads instead of 12, a few milliseconds of CPU. Process-wide: every TLS
    connection kubevip opens goes to an API server. tests/unit/kube/test_import.py checks it.
    """
    asyncio.sslproto.SSLProtocol.max_size = min(asyncio.sslproto.SSLProtocol.max_size, TLS_READ_BUFFER)


_import_aiohttp()
_small_tls_reads()
