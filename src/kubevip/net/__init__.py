"""Kernel side effects: VIP addresses (with ownership and kernel lifetimes), netlink batches,
GARP / unsolicited NA, routes, connection aborts; `vipset.VipSet` puts them together in their fixed
order for the Service agent and the control-plane VIP alike.

Rule: side effects only; nothing here decides which VIP belongs where (that is `kubevip.core` and
`kubevip.election`), and nothing imports the agent, election, IPAM or the lab.
"""
