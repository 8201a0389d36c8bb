"""kubevip.bgp."""
