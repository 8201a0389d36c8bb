"""bench/agent.py's reading of the API server's request counters: the write-backs of a restart."""

from agent import report_writes  # bench/agent.py (tests/unit/bench/conftest.py puts bench/ on the path)


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
