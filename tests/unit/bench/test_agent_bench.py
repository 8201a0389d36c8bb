"""bench/agent.py's reading of the API server's request counters: the write-backs of a restart."""

import time

from agent import (  # bench/agent.py (conftest puts bench/ on the path)
    _drain,
    _stalls,
    cpu_s,
    loop_delay,
    main_thread_cpu_s,
    report_writes,
    request_rates,
    runqueue_wait_s,
)


def _scrape(counts: dict[tuple[str, str, str], int]) -> str:
    lines = ["# HELP apiserver_request_total x", "# TYPE apiserver_request_total counter"]
    for (verb, resource, sub), n in counts.items():
        labels = f'code="200",resource="{resource}",subresource="{sub}",verb="{verb}"'
        lines.append(f"apiserver_request_total{{{labels}}} {n}")
    return "\n".join(lines)


def test_writes_other_than_leases_are_counted_by_verb_and_resource() -> None:
    before = _scrape({
        ("PUT", "leases", ""): 10, ("PATCH", "services", "status"): 3, ("GET", "services", ""): 1,
    })
    after = _scrape({
        ("PUT", "leases", ""): 90,  # the election's renewals: never a write-back
        ("PATCH", "services", "status"): 5,
        ("PATCH", "services", ""): 4,
        ("POST", "events", ""): 7,
        ("GET", "services", ""): 50,  # reads are not writes
    })
    assert report_writes(before, after) == {
        "PATCH services status": 2.0, "PATCH services": 4.0, "POST events": 7.0,
    }


def test_nothing_written_is_an_empty_answer() -> None:
    same = _scrape({("PUT", "leases", ""): 10, ("PATCH", "services", "status"): 3})
    assert report_writes(same, same) == {}


def test_steady_rates_name_every_kind_busiest_first() -> None:
    kinds = {("PUT", "leases", ""): 40, ("GET", "openapi", ""): 2, ("POST", "events", ""): 1}
    kinds |= {("GET", f"r{i}", ""): 1 + i for i in range(10)}  # more kinds than the table shows
    before = _scrape({k: 0 for k in kinds})
    rates = request_rates(before, _scrape(kinds), 10.0)
    assert len(rates) == len(kinds) and rates["POST events"] == 0.1
    assert next(iter(rates)) == "PUT leases" and list(rates.values()) == sorted(rates.values(), reverse=True)


def test_the_drain_column_names_the_event_posts_drained_or_not() -> None:
    kinds = {"PATCH services": 3.0, "POST events": 100.0}
    row = {"writeback_drain_after_restart_s": 21.5, "writebacks_after_restart_by_verb_resource": kinds}
    assert _drain(row) == "103 writes (100 Event POSTs), 21.5 s"
    undrained = {**row, "writeback_drain_after_restart_s": None}
    assert _drain(undrained) == "103 writes (100 Event POSTs), not drained"


def _metrics(counts: dict[str, int], name: str = "delay") -> str:
    """An agent's /metrics text with a loop histogram (cumulative counts per bound)."""
    lines = [f"# TYPE kubevip_event_loop_{name}_seconds histogram"]
    lines += [f'kubevip_event_loop_{name}_seconds_bucket{{le="{le}"}} {n}.0' for le, n in counts.items()]
    return "\n".join(lines) + "\n"


def test_stalls_over_100ms_are_the_wake_ups_above_that_bucket() -> None:
    text = _metrics({"0.05": 90, "0.1": 95, "0.25": 97, "0.5": 98, "1.0": 98, "+Inf": 98})
    assert loop_delay(text) == {"over_100ms": 3.0, "wakeups": 98.0, "worst_le_s": 0.5}
    quiet = loop_delay(_metrics({"0.01": 40, "0.1": 40, "+Inf": 40}))
    assert quiet == {"over_100ms": 0.0, "wakeups": 40.0, "worst_le_s": 0.01}
    assert loop_delay("no histogram here") == {}


def test_stalls_not_spent_waiting_for_a_cpu_are_read_beside_them() -> None:
    delay = _metrics({"0.05": 90, "0.1": 95, "0.25": 97, "0.5": 98, "+Inf": 98})
    blocked = _metrics({"0.05": 97, "0.1": 97, "0.25": 98, "0.5": 98, "+Inf": 98}, "blocked")
    assert loop_delay(delay + blocked) == {
        "over_100ms": 3.0, "wakeups": 98.0, "worst_le_s": 0.5,
        "blocked_over_100ms": 1.0, "blocked_worst_le_s": 0.25,
    }
    assert loop_delay(blocked) == {}  # an agent's histograms come together or not at all
    nodes = {"node1": loop_delay(delay + blocked), "node2": loop_delay(delay + blocked)}
    assert _stalls(nodes) == "6 (<= 0.5 s); not waiting for a CPU 2"


def test_the_stalls_column_sums_the_agents_and_names_the_worst() -> None:
    nodes = {
        "node1": {"over_100ms": 2.0, "wakeups": 50.0, "worst_le_s": 0.25},
        "node2": {"over_100ms": 1.0, "wakeups": 50.0, "worst_le_s": 2.5},
        "node3": {},
    }
    assert _stalls(nodes) == "3 (<= 2.5 s)"
    assert _stalls({"node1": {}}) == "-"


def test_runqueue_wait_is_read_for_a_live_process_and_none_for_a_gone_one() -> None:
    import os

    wait = runqueue_wait_s(os.getpid())
    assert wait is not None and wait >= 0
    assert runqueue_wait_s(2**22 + 1) is None  # above pid_max's default range: no such process


def test_the_main_thread_s_cpu_is_part_of_the_process_s_and_none_for_a_gone_process() -> None:
    import os
    import threading

    def spin() -> None:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass

    t = threading.Thread(target=spin)  # CPU on another thread: the process's, not the main thread's
    t.start()
    t.join()
    main, total = main_thread_cpu_s(os.getpid()), cpu_s(os.getpid())
    assert main is not None and total is not None and main <= total
    assert total - main >= 0.2, (total, main)
    assert main_thread_cpu_s(2**22 + 1) is None
