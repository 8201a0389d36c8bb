"""kubevip.kube."""
