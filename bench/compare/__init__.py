"""Side-by-side benchmark of kubevip and the upstream kube-vip agent (run by bench/compare.py)."""
