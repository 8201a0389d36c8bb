"""Makes bench/ importable so the pure helpers of the benchmarks can be unit-tested."""

import sys
from pathlib import Path

BENCH = str(Path(__file__).resolve().parents[3] / "bench")
if BENCH not in sys.path:
    sys.path.insert(0, BENCH)
