"""Kubernetes manifests for installing kubevip: DaemonSet, static Pod, RBAC.

Rule: pure renderers from options to objects; the agent never imports them.
"""
