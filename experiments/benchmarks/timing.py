"""Side-by-side timing for the benchmarks: every runner timed interleaved, in a shuffled order each round."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable


def time_interleaved(
    runners: dict[str, Callable[[], object]], rounds: int, warmup: int = 3
) -> dict[str, float]:
    """Median seconds per call of each runner, after `warmup` untimed calls each.

    Runners take turns within every round (shuffled, seeded), so machine noise hits them alike and their
    ratios stay meaningful on a busy machine.
    """
    for fn in runners.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    rng = random.Random(0)
    for _ in range(rounds):
        rng.shuffle(order)
        for k in order:
            t0 = time.perf_counter()
            runners[k]()
            samples[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}
