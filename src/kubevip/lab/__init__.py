"""kubevip.lab: a local dual-stack lab (real control plane, network namespaces); test and demo tooling."""

DEFAULT_LAB_ID = "default"
