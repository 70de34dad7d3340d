"""Browser latency of the dashboard: the median wall time of N ablation toggles in headless Chromium.

    python experiments/benchmarks/dashboard_latency.py --n 20

Starts `streamlit run apps/dashboard.py` on loopback, opens Predict & ablate on the embedded model, and
toggles MLP 0's ablation N times. Each sample is the wall time from the click until the page shows the new
"after" probability and the app reports it is no longer running (what a user waits for). A benchmark figure
for the README, never a timed test. Needs /usr/bin/chromium and /usr/bin/chromedriver.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "apps"))
sys.path.insert(0, str(REPO))

import test_dashboard_browser as base  # noqa: E402  (server and browser helpers)


def _running(driver) -> bool:
    from selenium.webdriver.common.by import By

    app = driver.find_elements(By.CSS_SELECTOR, '[data-testid="stApp"]')
    return not app or app[0].get_attribute("data-test-script-state") != "notRunning"


def _after(driver) -> str | None:
    return base.after_value(driver, "after ablation") or base.after_value(driver, "nothing ablated")


def measure(n: int) -> list[float]:
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with base.streamlit_server(tmp / "streamlit.log") as url, base.chromium(tmp / "profile") as driver:
            driver.get(url)
            base.wait_for(driver, "the first predictions", _after)
            samples = []
            for i in range(n + 2):  # two warm-up toggles fill the caches both ways
                before = (_after(driver), base.after_value(driver, "after ablation") is None)
                box = driver.find_element(By.CSS_SELECTOR, ".st-key-mlp_0 label")
                start = time.perf_counter()
                box.click()
                while True:
                    ablated_now = base.after_value(driver, "after ablation") is None
                    if not _running(driver) and ablated_now != before[1] and _after(driver):
                        break
                    time.sleep(0.005)
                if i >= 2:
                    samples.append(time.perf_counter() - start)
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
