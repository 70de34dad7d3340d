"""Browser latency of the dashboard: the median wall time of N ablation toggles in headless Chromium.

    python experiments/benchmarks/dashboard_latency.py --n 20

Starts `streamlit run apps/dashboard.py` on loopback, opens Predict & ablate on the embedded model, and
toggles MLP 0's ablation N times. Each sample is the wall time from the click until the page shows the new
"after" probability and the app reports it is no longer running (what a user waits for), measured inside
the page (`performance.now()`, polled every 2 ms) so that WebDriver round trips are not counted. A benchmark figure
for the README, never a timed test. Needs /usr/bin/chromium and /usr/bin/chromedriver.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "apps"))
sys.path.insert(0, str(REPO))

import test_dashboard_browser as base  # noqa: E402  (server and browser helpers)

# Clicks MLP 0's checkbox and waits, inside the page, until the app is idle again and shows the other state
# ("after ablation" metrics appear or go). Timed with performance.now() in the page, polled every 2 ms, so
# no WebDriver round trip (each tens of ms) is counted.
TOGGLE_AND_WAIT = """
const done = arguments[arguments.length - 1];
const state = () => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) return null;
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return null;
  const labels = [...document.querySelectorAll('[data-testid="stMetric"] [data-testid="stMetricLabel"]')]
    .map((m) => m.innerText);
  if (labels.some((l) => l.includes('after ablation'))) return 'ablated';
  return labels.some((l) => l.includes('nothing ablated')) ? 'clean' : null;
};
const before = state();
const t0 = performance.now();
document.querySelector('.st-key-mlp_0 input').click();
const tick = () => {
  const now = state();
  if (now !== null && now !== before) return done(performance.now() - t0);
  if (performance.now() - t0 > 30000) return done(-1);
  setTimeout(tick, 2);
};
setTimeout(tick, 2);
"""


def _after(driver) -> str | None:
    return base.after_value(driver, "after ablation") or base.after_value(driver, "nothing ablated")


def measure(n: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with base.streamlit_server(tmp / "streamlit.log") as url, base.chromium(tmp / "profile") as driver:
            driver.get(url)
            base.wait_for(driver, "the first predictions", _after)
            driver.set_script_timeout(60)
            samples = []
            for i in range(n + 2):  # two warm-up toggles fill the caches both ways
                ms = driver.execute_async_script(TOGGLE_AND_WAIT)
                if ms < 0:
                    raise RuntimeError("the page did not show the toggled state within 30 s")
                if i >= 2:
                    samples.append(ms / 1000)
            return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="toggles to time")
    args = parser.parse_args()
    samples = measure(args.n)
    ms = sorted(1000 * s for s in samples)
    print(
        f"{len(ms)} toggles: median {statistics.median(ms):.0f} ms, "
        f"min {ms[0]:.0f} ms, max {ms[-1]:.0f} ms (target ≤ 250 ms)"
    )


if __name__ == "__main__":
    main()
