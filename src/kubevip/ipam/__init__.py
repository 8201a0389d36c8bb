"""IP address management: the pure allocator (`allocator.py`) over kube-vip's cloud-provider pools,
and the controller that writes allocations to Services.

Rule: the allocator is pure (no clock, no client); the controller is the only writer, shares the
family decision and the class and ignore rules with the agent (`kubevip.core`), and never imports the
agent or the control-plane VIP.
"""
