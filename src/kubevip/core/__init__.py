"""Pure decisions: families, VIPs, endpoints, claims, rows, conditions, the cluster view. No I/O, no clocks,
no clients.

Rule: same inputs, same output, whatever order events came in; every address carries its family
(`kubevip.ip`); every rejection has a reason code (`reasons.py`). Imports only the ground floor.
"""
