"""kubevip.manifests."""
