"""Properties of the sticky rendezvous choice: deterministic, only live+eligible, sticky, spread."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from kubevip.election.rendezvous import choose_holder, rendezvous, score

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
node_sets = st.frozensets(names, max_size=8)


@given(names, st.one_of(st.none(), names), node_sets, st.one_of(st.none(), node_sets), st.randoms())
def test_same_view_same_answer_whatever_the_order(unit, current, live, eligible, rnd):
    shuffled = list(live)
    rnd.shuffle(shuffled)
    el = None if eligible is None else list(eligible)
    if el is not None:
        rnd.shuffle(el)
    assert choose_holder(unit, current, live, eligible) == choose_holder(unit, current, shuffled, el)


@given(names, st.one_of(st.none(), names), node_sets, st.one_of(st.none(), node_sets))
def test_only_live_and_eligible_nodes_win(unit, current, live, eligible):
    winner = choose_holder(unit, current, live, eligible)
    candidates = live if eligible is None else live & eligible
    if candidates:
        assert winner in candidates
    else:
        assert winner is None


@given(names, node_sets, st.one_of(st.none(), node_sets), names)
def test_sticky_while_current_holder_is_live_and_eligible(unit, live, eligible, current):
    live = live | {current}
    if eligible is not None:
        eligible = eligible | {current}
    assert choose_holder(unit, current, live, eligible) == current


@given(names, node_sets, names)
def test_no_move_back_when_a_node_returns(unit, live, returning):
    """A node joining (or coming back) never takes a unit from a live holder."""
    holder = choose_holder(unit, None, live)
    if holder is not None:
        assert choose_holder(unit, holder, live | {returning}) == holder


@given(names, st.frozensets(names, min_size=2, max_size=8))
def test_losing_a_non_holder_does_not_move_the_unit(unit, live):
    winner = rendezvous(unit, live)
    assert winner is not None
    other = sorted(live - {winner})[0]
    assert rendezvous(unit, live - {other}) == winner


@given(names, st.frozensets(names, min_size=2, max_size=8))
def test_a_dead_holders_unit_goes_to_the_next_best(unit, live):
    winner = rendezvous(unit, live)
    assert winner is not None
    rest = live - {winner}
    expected = max(rest, key=lambda n: (score(unit, n), [-ord(c) for c in n]))
    assert choose_holder(unit, winner, rest) == expected


def test_units_spread_over_nodes():
    nodes = [f"node-{i}" for i in range(5)]
    counts = Counter(rendezvous(f"10.0.{i // 256}.{i % 256}", nodes) for i in range(5000))
    assert set(counts) == set(nodes)
    for node in nodes:
        assert 800 <= counts[node] <= 1200, counts


def test_a_dead_nodes_units_spread_over_the_survivors():
    nodes = [f"node-{i}" for i in range(5)]
    units = [f"default/svc-{i}" for i in range(4000)]
    orphaned = [u for u in units if rendezvous(u, nodes) == "node-0"]
    moved = Counter(choose_holder(u, "node-0", nodes[1:]) for u in orphaned)
    assert set(moved) == set(nodes[1:])
    assert min(moved.values()) >= len(orphaned) / 4 * 0.7, moved


def test_score_is_stable_across_processes():
    # Pinned value: a change of hash would move every VIP on upgrade.
    assert score("192.0.2.10", "node-a") == score("192.0.2.10", "node-a")
    assert score("192.0.2.10", "node-a") != score("192.0.2.10", "node-b")
    assert score("u", "n") == int.from_bytes(
        __import__("hashlib").blake2b(b"u\x00n", digest_size=8).digest(), "big"
    )


# -- preference (kube-vip.io/preferred-nodes) ----------------------------------------------------------

prefs = st.lists(names, unique=True, max_size=4)


@given(names, st.one_of(st.none(), names), node_sets, st.one_of(st.none(), node_sets), prefs,
       st.one_of(st.none(), node_sets))
def test_preference_only_picks_among_live_eligible(unit, current, live, eligible, preferred, settled):
    winner = choose_holder(unit, current, live, eligible, preferred, settled)
    candidates = live if eligible is None else live & eligible
    assert (winner in candidates) if candidates else winner is None


@given(names, node_sets, prefs)
def test_an_orphan_goes_to_the_first_preferred_candidate(unit, live, preferred):
    winner = choose_holder(unit, None, live, None, preferred, frozenset())
    up = [n for n in preferred if n in live]
    assert winner == (up[0] if up else rendezvous(unit, live))


@given(names, node_sets, prefs, node_sets, names)
def test_holder_gives_way_only_to_a_settled_better_ranked_node(unit, live, preferred, settled, current):
    """No flapping: a preferred node that is back but not settled never takes a held unit; a settled one
    ranked above the holder does; nobody ranked below the holder ever does."""
    live = live | {current}
    winner = choose_holder(unit, current, live, None, preferred, settled)
    rank = preferred.index(current) if current in preferred else len(preferred)
    better = [n for n in preferred[:rank] if n in live and n in settled]
    assert winner == (better[0] if better else current)


@given(names, node_sets, prefs, names)
def test_the_most_preferred_holder_is_stable(unit, live, preferred, other):
    """Once the first live preferred node holds the unit, nothing moves it while it stays live."""
    up = [n for n in preferred if n in live]
    if up:
        assert choose_holder(unit, up[0], live, None, preferred, None) == up[0]


def test_a_holder_never_gives_way_to_a_settled_node_ranked_below_it():
    """The holder is the most preferred live node but not settled itself (it came back recently): a
    settled node ranked below it must not take the unit from it."""
    assert choose_holder("u", "a", {"a", "b"}, None, ("a", "b"), {"b"}) == "a"
    assert choose_holder("u", "b", {"a", "b", "c"}, None, ("a", "b", "c"), {"c"}) == "b"
    assert choose_holder("u", "b", {"a", "b", "c"}, None, ("a", "b", "c"), {"a", "c"}) == "a"


def test_equal_scores_go_to_the_smaller_name_whatever_the_order(monkeypatch):
    """Ties of the 64-bit score are astronomically rare, but every node must still break them alike."""
    import kubevip.election.rendezvous as rv

    monkeypatch.setattr(rv, "score", lambda unit, node: 7)
    for order in (["b", "a", "c"], ["c", "b", "a"], ["a", "c", "b"]):
        assert rv.rendezvous("u", order) == "a"
    monkeypatch.setattr(rv, "score", lambda unit, node: {"a": 1, "b": 5, "c": 5}[node])
    for order in (["b", "a", "c"], ["c", "b", "a"], ["a", "c", "b"]):
        assert rv.rendezvous("u", order) == "b"


pref_lists = st.lists(names, max_size=4, unique=True)


@given(names, names, node_sets, st.one_of(st.none(), node_sets), pref_lists,
       st.one_of(st.none(), node_sets), st.booleans())
def test_a_live_previous_holder_counts_as_the_current_one(unit, previous, live, eligible, preferred,
                                                          settled, starting):
    """A node back in a new epoch takes its units back: exactly the answer it would get as their holder
    (preferred nodes and their hysteresis included), whether or not the asker is starting."""
    live = live | {previous}
    assert choose_holder(unit, None, live, eligible, preferred, settled, previous, starting) == \
        choose_holder(unit, previous, live, eligible, preferred, settled)


@given(names, names, node_sets, st.one_of(st.none(), node_sets), pref_lists,
       st.one_of(st.none(), node_sets))
def test_only_a_starting_node_waits_for_a_previous_holder_that_is_not_live(
        unit, previous, live, eligible, preferred, settled):
    live = live - {previous}
    plain = choose_holder(unit, None, live, eligible, preferred, settled)
    # not starting: a stopped holder is replaced at once, as if no claim named it
    assert choose_holder(unit, None, live, eligible, preferred, settled, previous, False) == plain
    waiting = choose_holder(unit, None, live, eligible, preferred, settled, previous, True)
    if eligible is None or previous in eligible:
        assert waiting == previous  # left to it: the orphan race hands it on if it does not come
    else:
        assert waiting == plain  # a node that may not hold the unit is not waited for


@given(names, names, names, node_sets, st.one_of(st.none(), node_sets), st.booleans())
def test_a_valid_claim_outweighs_a_previous_holder(unit, current, previous, live, eligible, starting):
    live = live | {current}
    assert choose_holder(unit, current, live, eligible, (), None, previous, starting) == \
        choose_holder(unit, current, live, eligible)
