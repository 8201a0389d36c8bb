"""Every per-Service table of the agent is freed when the Service goes (tenants create and delete
Services without end): Event names written, status retries, metric series."""

from __future__ import annotations

from kubevip.agent.reconciler import Agent
from kubevip.config import AgentConfig
from kubevip.core.parse import service_from_dict
from kubevip.core.world import SERVICE, apply_event
from tests.unit.objects import service


def _samples(agent: Agent, name: str) -> list[dict[str, str]]:
    return [
        s.labels for m in agent.metrics.registry.collect() for s in m.samples
        if s.name == "kube_vip_service_reconcile_errors_total" and s.labels.get("name") == name
    ]


async def test_tables_are_freed_with_the_service() -> None:
    cfg = AgentConfig.load({"vip_nodename": "n1", "svc_enable": "true", "vip_leaderelection": "false"})
    agent = Agent(cfg, None)
    view = service_from_dict(service("web", "no ip,192.0.2.1"))
    keep = service_from_dict(service("keep", "192.0.2.2"))
    for v in (view, keep):
        agent.touched(apply_event(agent.world, SERVICE, False, v))
        agent.reporter.reports.mark(v.key, f"{v.name}.kubevip-1")
        agent.reporter.error_metric(v.key, "not-an-ip")
    agent.reporter.reports.failed_status[view.key] = 1.0
    agent.reporter.reports.failures[view.key] = 3
    assert _samples(agent, "web") and _samples(agent, "keep")

    agent.touched(apply_event(agent.world, SERVICE, True, view))
    assert view.key not in agent.reporter.reports.written
    reports = agent.reporter.reports
    assert view.key not in reports.failed_status and view.key not in reports.failures
    assert view.key not in agent.reporter.reports.metric_reasons
    assert not _samples(agent, "web"), "the deleted Service's metric series is removed"
    assert agent.reporter.reports.sent(keep.key, "keep.kubevip-1") and _samples(agent, "keep")
