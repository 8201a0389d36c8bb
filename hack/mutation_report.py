"""Score per module from a mutmut 3 run (its `*.py.meta` files): hack/mutation prints this."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

# mutmut's own exit-code meanings (mutmut/stats.py)
KILLED = {1, 3, 37}
SURVIVED = {0}
NO_TESTS = {5, 33}
TIMEOUT = {-24, 24, 152, 255, 36}


def main(mutants: Path) -> None:
    rows = []
    survivors: list[str] = []
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        module = str(meta.relative_to(mutants)).removesuffix(".meta").removeprefix("src/")
        c: Counter[str] = Counter()
        for key, code in codes.items():
            kind = (
                "killed" if code in KILLED else "survived" if code in SURVIVED
                else "no tests" if code in NO_TESTS else "timeout" if code in TIMEOUT
                else "not checked" if code is None else "other"
            )
            c[kind] += 1
            if kind in ("survived", "no tests"):
                survivors.append(f"{key} ({kind})")
        total = sum(c.values()) - c["not checked"]
        # A timeout is a kill (the mutant hung the tests); "no tests" counts against the score.
        score = f"{(c['killed'] + c['timeout']) / total:6.0%}" if total else "     -"
        rows.append((module, total, c["killed"] + c["timeout"], c["survived"], c["no tests"],
                     c["not checked"], score))
    print(f"{'module':40} {'checked':>7} {'killed':>6} {'surv.':>5} {'untested':>8} {'pending':>7}", "score")
    for module, total, killed, surv, none, pending, score in rows:
        print(f"{module:40} {total:7} {killed:6} {surv:5} {none:8} {pending:7} {score}")
    all_total = sum(r[1] for r in rows)
    all_killed = sum(r[2] for r in rows)
    print(f"{'TOTAL (checked)':40} {all_total:7} {all_killed:6} {all_killed / max(1, all_total):26.0%}")
    print("\nsurvivors (`mutmut show <name>` in the work dir shows each):")
    for s in survivors:
        print("  " + s)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
