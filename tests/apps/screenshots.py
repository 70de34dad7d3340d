"""Screenshots of every dashboard view at 6, 19 and 64 tokens, for a person to look at (not a test).

    python tests/apps/screenshots.py [--out /tmp/dashboard-shots] [--views attention,lens] [--lengths 6,19]

Starts one `streamlit run` and one headless chromium (the browser tests' helpers), opens each view's link
and saves the whole page (the window is grown to the page's height) as <view>-<n>.png.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).parent))
import test_dashboard_browser as base  # noqa: E402
import test_dashboard_issue15_browser as b15  # noqa: E402

import interp  # noqa: E402
from apps.state import VIEWS  # noqa: E402

EXTRA = {"attention": {"layer": "1"}, "compare": {}, "features": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/dashboard-shots"))
    parser.add_argument("--views", default=",".join(VIEWS))
    parser.add_argument("--lengths", default="6,19,64")
    parser.add_argument("--params", default="", help="extra query parameters, a=b&c=d")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = interp.load().requires_grad_(False)
    extra = dict(p.split("=", 1) for p in args.params.split("&") if p)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with base.streamlit_server(tmp / "log") as url, base.chromium(tmp / "profile") as driver:
            for view in args.views.split(","):
                for n in map(int, args.lengths.split(",")):
                    prompt = b15.prompt_of(model, min(n, model.cfg.n_ctx))
                    params = {"view": view, "prompt": prompt, **EXTRA.get(view, {}), **extra}
                    driver.set_window_size(1600, 1200)
                    driver.get(f"{url}/?{urlencode(params)}")
                    b15.settle(driver, f"{view} at {n} tokens", quiet_s=1.5)
                    height = driver.execute_script(
                        "const m = document.querySelector('[data-testid=\"stMainBlockContainer\"]');"
                        "return m ? m.scrollHeight : document.body.scrollHeight;"
                    )
                    driver.set_window_size(1600, min(int(height) + 250, 9000))
                    time.sleep(1.5)  # charts redraw at the new size
                    path = args.out / f"{view}-{n}.png"
                    driver.save_screenshot(str(path))
                    print(path, flush=True)


if __name__ == "__main__":
    main()
