"""Bench probe (`bench/agent.py --lag-period S`): the agents sample their event loop's lateness every
`KVB_LAG_PERIOD` seconds instead of 0.25 s.

`kubevip_event_loop_blocked_seconds` credits a late wake-up with the run-queue wait of its whole tick,
so a wait before the wake-up was due can be credited too: at most one period of it. A short period
bounds that for a measurement (issue 21's stalls over 100 ms) without costing every agent the extra
wake-ups in production. Imported by every Python process started with this directory on PYTHONPATH;
does nothing where kubevip is not installed.
"""

import os

try:
    import kubevip.metrics as _metrics
except ImportError:  # not an agent
    pass
else:
    _defaults = list(_metrics.watch_loop.__defaults__ or ())
    _defaults[1] = float(os.environ["KVB_LAG_PERIOD"])  # (heartbeat, period, warn)
    _metrics.watch_loop.__defaults__ = tuple(_defaults)
