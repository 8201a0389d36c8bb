"""kubevip.agent."""
