"""Dashboard rerun time, server side: one rerun of the Predict & ablate view on the embedded model (target: <= 100 ms).

Drives the real app (apps/dashboard.py) with Streamlit's AppTest, in this process, and times `run()`:
the whole script (sidebar, ablation grid, table, charts) plus AppTest's own bookkeeping, so it is an upper
bound on what the server spends per rerun. Cases, each a median over repetitions:

- rerun, nothing changed: every result comes from the cache;
- toggle on, zero / mean: tick one head, attention layer or MLP layer that has not been ablated before
  (the ablated forward really runs; mean ablation also runs the reference prompts);
- toggle off: back to no ablation (cached).

    .venv/bin/python experiments/benchmarks/dashboard_rerun.py            # 24 toggles per case
    .venv/bin/python experiments/benchmarks/dashboard_rerun.py --quick    # 6
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "apps" / "dashboard.py"
TARGET_MS = 100.0


def timed_run(at: AppTest) -> float:
    t0 = time.perf_counter()
    at.run()
    ms = (time.perf_counter() - t0) * 1000
    if at.exception or at.error:
        raise RuntimeError(f"the app failed: {[e.value for e in [*at.exception, *at.error]]}")
    return ms


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 toggles per case instead of 24")
    args = parser.parse_args(argv)

    at = AppTest.from_file(str(APP), default_timeout=120)
    t0 = time.perf_counter()
    at.run()  # loads the model, fills the caches
    first = (time.perf_counter() - t0) * 1000
    n_layers = len([c for c in at.checkbox if c.key.startswith("mlp_")])
    n_heads = len([c for c in at.checkbox if c.key.startswith("head_0_")])
    keys = [f"head_{layer}_{h}" for layer in range(n_layers) for h in range(n_heads)]
    keys += [f"{kind}_{layer}" for kind in ("attn", "mlp") for layer in range(n_layers)]
    keys = keys[: 6 if args.quick else 24]

    times: dict[str, list[float]] = {"rerun, nothing changed": [], "toggle off (cached)": []}
    for method in ("zero", "mean"):
        at.radio(key="method").set_value(method).run()
        on = times.setdefault(f"toggle on, {method} ablation (new forward)", [])
        for key in keys:
            times["rerun, nothing changed"].append(timed_run(at))
            at.checkbox(key=key).check()
            on.append(timed_run(at))
            at.checkbox(key=key).uncheck()
            times["toggle off (cached)"].append(timed_run(at))

    print(f"Predict & ablate rerun latency, {APP.relative_to(REPO)} via AppTest (first run {first:.0f} ms)")
    print(f"{'case':<42} {'median ms':>10} {'max ms':>8} {'n':>4}")
    worst = 0.0
    for case, values in times.items():
        median = statistics.median(values)
        worst = max(worst, median)
        print(f"{case:<42} {median:>10.1f} {max(values):>8.1f} {len(values):>4}")
    verdict = "within" if worst <= TARGET_MS else "OVER"
    print(f"slowest median {worst:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target")
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
