"""Which Services this agent handles at all, by `spec.loadBalancerClass` (kube-vip's lb_class_* rules)."""

from __future__ import annotations

from dataclasses import dataclass

from kubevip.core.reasons import Reason
from kubevip.core.views import ServiceView

# Reason code (agent-level, next to core.reasons) for a Service another implementation handles.
OTHER_CLASS = Reason.OTHER_LOAD_BALANCER_CLASS


@dataclass(frozen=True)
class ClassFilter:
    """`lb_class_only`, `lb_class_name`, `lb_class_legacy_handling`."""

    only: bool = False
    name: str = "kube-vip.io/kube-vip-class"
    legacy_handling: bool = True


def class_reason(service: ServiceView, f: ClassFilter) -> str:
    """"" when this agent handles the Service's class, else OTHER_CLASS.

    lb_class_only: only Services of class `name`. Otherwise Services without a class and of class `name`
    are handled; with lb_class_legacy_handling=false the class is not consulted (kube-vip before classes).
    """
    cls = service.load_balancer_class
    if f.only:
        return "" if cls == f.name else OTHER_CLASS
    if cls is None or cls == f.name or not f.legacy_handling:
        return ""
    return OTHER_CLASS
