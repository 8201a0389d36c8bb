"""The Service agent: a thin loop. Reflectors feed the cluster view (`core.world`), the core decides,
the election hands holdings down as data, and the agent diffs desired rows against the kernel and the BGP
speaker and converges; its reporter writes status, annotations and Events.

Rule: the agent decides nothing itself (decisions live in `kubevip.core`), imports no HTTP client (only
`kubevip.kube` talks to the API server) and never imports `kubevip.controlplane` or `kubevip.ipam`.
Shutdown is staged: withdraw, release, exit.
"""
