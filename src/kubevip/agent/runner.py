"""Runs the agent until SIGTERM: placeholder until the reconciler is wired (see agent/reconciler.py)."""

from __future__ import annotations

from kubevip.config import AgentConfig


async def run_agent(cfg: AgentConfig) -> int:
    """Start the agent; returns the process exit code."""
    raise NotImplementedError(cfg.node_name)
