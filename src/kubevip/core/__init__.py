"""Pure decisions: families, VIPs, endpoints, this node's plan. No I/O, no clocks, no clients."""
