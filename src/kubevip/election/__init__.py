"""kubevip.election."""
