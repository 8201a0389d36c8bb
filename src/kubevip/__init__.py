"""kubevip: virtual IPs and LoadBalancer Services for bare-metal Kubernetes, dual-stack correct."""

__version__ = "0.1.0"
