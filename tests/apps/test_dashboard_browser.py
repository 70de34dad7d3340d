"""The dashboard in a real browser: `streamlit run` on a free local port, driven by headless chromium.

Types a prompt, ticks an ablation, checks that the shown probability changes to interp's own ablated value
and that the URL follows, and saves a screenshot (also copied to runs/dashboard_screenshot.png for people).
Needs Debian's chromium and chromedriver: CI installs them; elsewhere the test is skipped without them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

import interp
from interp.analysis import MLP, prob, run_ablated

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "apps" / "dashboard.py"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = int(os.environ.get("INTERP_BROWSER_WAIT_S", "60"))  # raise it on a crowded machine
PROMPT = "The capital of Spain is"


def require_browser() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed (apt-get install chromium chromium-driver)"
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the browser test: {message}")
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def streamlit_server(
    log: Path, page_args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """`streamlit run apps/dashboard.py` on loopback; always stopped, even when the test fails.

    `page_args` go to the page after `--` (e.g. `--models DIR`); `env` is added to the server's environment
    (e.g. INTERP_DASHBOARD_SAES)."""
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true"]
    cmd += [
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
    ]
    cmd += ["--server.fileWatcherType", "none"]
    if page_args:
        cmd += ["--", *page_args]
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + WAIT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer within {WAIT_S} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def chromium(profile: Path, download_dir: Path | None = None) -> Iterator:
    """Headless chromium; with `download_dir`, downloads land there without a prompt."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    flags = (
        "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking "
    )
    flags += "--disable-component-update --disable-sync --no-first-run --window-size=1600,1200"
    for flag in flags.split():
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    if download_dir is not None:
        prefs = {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
            "profile.default_content_setting_values.automatic_downloads": 1,  # a second file, unasked
        }
        options.add_experimental_option("prefs", prefs)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, what: str, condition: Callable) -> object:
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda d: condition(d)
        )
    except TimeoutException:
        pytest.fail(f"timed out after {WAIT_S} s waiting for {what}")


def metrics(driver) -> dict[str, str]:
    """Shown st.metric values by label, once the app is idle (no rerun in flight)."""
    from selenium.webdriver.common.by import By

    if driver.find_elements(By.CSS_SELECTOR, '[data-testid="stStatusWidget"]'):
        return {}  # "Running…": values may be stale
    out = {}
    for m in driver.find_elements(By.CSS_SELECTOR, '[data-testid="stMetric"]'):
        label = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricLabel"]').text
        out[label] = m.find_element(By.CSS_SELECTOR, '[data-testid="stMetricValue"]').text
    return out


def query(driver) -> dict[str, list[str]]:
    return parse_qs(urlparse(driver.current_url).query)


def after_value(driver, label_part: str) -> str | None:
    return next((v for k, v in metrics(driver).items() if label_part in k), None)


def test_type_prompt_toggle_ablation_and_screenshot(tmp_path):
    require_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    model = interp.load().requires_grad_(False)
    answer = int(model(PROMPT)[0, -1].argmax())  # computed, never hard-coded: the checkpoint may change
    label = f"P({model.to_string([answer])!r})"
    p_before = float(model(PROMPT)[0, -1].float().softmax(-1)[answer])
    p_ablated = run_ablated(model, PROMPT, MLP(0), prob(answer)).metric

    with streamlit_server(tmp_path / "streamlit.log") as url, chromium(tmp_path / "profile") as driver:
        driver.get(url)
        box = wait_for(
            driver, "the prompt box", lambda d: d.find_elements(By.CSS_SELECTOR, ".st-key-prompt input")
        )[0]
        wait_for(driver, "the first predictions", lambda d: after_value(d, "nothing ablated"))
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(PROMPT, Keys.ENTER)
        shown = wait_for(
            driver, f"{label} for the new prompt", lambda d: after_value(d, f"{label}, nothing ablated")
        )
        assert shown == f"{p_before:.4f}"
        # The URL is updated by its own message after the page renders: wait for it like any other change.
        wait_for(driver, "the prompt in the URL", lambda d: query(d).get("prompt") == [PROMPT])

        driver.find_element(By.CSS_SELECTOR, ".st-key-mlp_0 label").click()  # zero-ablate MLP 0
        ablated = wait_for(
            driver, f"{label} after ablation", lambda d: after_value(d, f"{label} after ablation")
        )
        assert ablated == f"{p_ablated:.4f}" and ablated != shown
        wait_for(driver, "the ablation in the URL", lambda d: query(d).get("mlp") == ["0"])

        time.sleep(1.0)  # let the charts finish drawing before the picture
        shot = tmp_path / "dashboard.png"
        assert driver.save_screenshot(str(shot))
    (REPO / "runs").mkdir(exist_ok=True)
    shutil.copy(shot, REPO / "runs" / "dashboard_screenshot.png")
