"""kubevip.lab."""
