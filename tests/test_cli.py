"""The `interp` console script: demo on the embedded model, and clear errors for bad arguments."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import setuptools
from setuptools.config.pyprojecttoml import read_configuration

from interp.cli import main


def test_demo_tells_the_residual_story(capsys):
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "' Paris'" in out.split("next-token predictions:")[1].splitlines()[1]  # top-1
    sums = re.findall(r"^\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+(\S+)$", out, flags=re.M)
    # one row per layer of tiny-facts-2, each checking resid_post = resid_pre + ΔE_attn + ΔE_mlp
    assert len(sums) == 6 and all(float(s) < 1e-5 for s in sums)


def test_demo_bad_model_is_a_clear_error(capsys, tmp_path):
    assert main(["demo", "--model", str(tmp_path / "missing") + "/"]) == 2
    assert "no such folder" in capsys.readouterr().out


def test_run_rejects_unknown_experiment(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "nope"])
    assert exc.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_run_all_gives_each_experiment_its_own_folder(tmp_path, capsys):
    assert main(["run", "all", "--quick", "--out", str(tmp_path)]) == 0
    for name in ("context-injection", "factual-recall"):
        assert (tmp_path / name / "report.md").exists()


# --- installed, from any working directory -------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


def _packages() -> list[str]:
    find = read_configuration(REPO / "pyproject.toml", expand=False)["tool"]["setuptools"]["packages"]["find"]
    return setuptools.find_packages(str(REPO), include=find["include"])


def test_pyproject_packages_the_app_and_the_experiments():
    found = set(_packages())
    assert {"interp", "apps", "apps.views", "experiments"} <= found
    assert not any(p.startswith("tests") for p in found)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """An environment that sees only what an install of pyproject's packages holds, not the checkout."""
    site = tmp_path_factory.mktemp("site")
    for package in _packages():
        src, dst = REPO / package.replace(".", "/"), site / package.replace(".", "/")
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.iterdir():
            if f.is_file():
                shutil.copy2(f, dst / f.name)
    shutil.copytree(
        REPO / "interp" / "embedded", site / "interp" / "embedded", dirs_exist_ok=True
    )  # package data
    return {**os.environ, "PYTHONPATH": str(site)}


def test_run_works_from_another_directory(tmp_path, installed):
    cmd = [sys.executable, "-m", "interp.cli", "run", "factual-recall", "--quick", "--n-facts", "1"]
    out = subprocess.run([*cmd, "--out", "here"], cwd=tmp_path, env=installed, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "here" / "report.md").exists()  # --out is relative to the caller's directory


def test_dashboard_starts_from_another_directory(tmp_path, installed):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "interp.cli", "dashboard", "--headless", "--port", str(port)]
    log = tmp_path / "streamlit.log"
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=installed, stdout=f, stderr=subprocess.STDOUT)
    try:
        deadline, health = time.monotonic() + 60, ""
        while time.monotonic() < deadline and proc.poll() is None and health != "ok":
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    health = r.read().decode()
            except OSError:
                time.sleep(0.5)
        assert health == "ok", log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    with pytest.raises(OSError):  # the server went with the command: nothing is left holding the port
        urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
    # The page's own imports resolve in the installed layout too (every view module, as the page imports them).
    code = "import apps.backend, apps.model_view, apps.views.predict, apps.views.tracing, apps.views.patching"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=installed, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
