"""kubevip.ipam."""
