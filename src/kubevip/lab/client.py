"""kubernetes_asyncio clients for a lab kubeconfig."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from kubernetes_asyncio import client, config


async def api_client(kubeconfig: Path) -> client.ApiClient:
    """A new ApiClient for `kubeconfig`; the caller closes it (`await c.close()`)."""
    api: client.ApiClient = await config.new_client_from_config(config_file=str(kubeconfig))
    return api


@asynccontextmanager
async def connect(kubeconfig: Path) -> AsyncIterator[client.ApiClient]:
    """`async with connect(path) as api:` -- an ApiClient closed on exit."""
    api = await api_client(kubeconfig)
    try:
        yield api
    finally:
        await api.close()
