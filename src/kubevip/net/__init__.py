"""kubevip.net."""
