"""The ConfigMap's pools: parsed in `kubevip.core.pools` (the agent's address policy reads them too)."""

from kubevip.core.pools import (
    GLOBAL,
    LOOKUP_ORDER,
    Block,
    Lookup,
    Pool,
    PoolConfig,
    PoolError,
    parse_configmap,
)

__all__ = ["GLOBAL", "LOOKUP_ORDER", "Block", "Lookup", "Pool", "PoolConfig", "PoolError", "parse_configmap"]
