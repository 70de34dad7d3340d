"""Shared checks for the experiment scripts: import them as `interp run` does; report.md against the CSVs."""

from __future__ import annotations

import importlib
import math
import re
import sys
from pathlib import Path
from typing import Any

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the checkout's `experiments` package, not the tests folder of that name

from experiments.reporting import parse_md_tables  # noqa: E402


def load_script(name: str) -> dict[str, Any]:
    """The experiment module's globals, imported as `interp run` does (so not as __main__)."""
    return vars(importlib.import_module(f"experiments.{name}"))


def run(script: dict[str, Any], args: list[str], capsys) -> tuple[int, str, str]:
    code = script["main"](args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def documented_columns(doc: str, csv: str) -> str:
    """The docstring's bullet for one CSV ("- name.csv  col, col ...", continuation lines included)."""
    match = re.search(rf"^- {re.escape(csv)}\s(.*?)(?=^- |^Plots|\Z)", doc, flags=re.M | re.S)
    assert match, f"{csv} is not documented in the script's docstring"
    return match.group(1)


def assert_columns(out: Path, script: dict[str, Any]) -> None:
    """Every CSV has exactly the columns in COLUMNS, and the docstring names each of them."""
    for csv, columns in script["COLUMNS"].items():
        header = list(pd.read_csv(out / csv, nrows=0).columns)
        assert header == list(columns), f"{csv}: {header} != {columns}"
        doc = documented_columns(script["__doc__"], csv)
        if csv != "checks.csv" or "check, value" in doc:
            missing = [c for c in columns if not re.search(rf"\b{re.escape(c)}\b", doc)]
            assert not missing, f"{csv}: columns {missing} are not documented"


def _same(cell: str, value: Any) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return cell == ""
    if isinstance(value, (bool,)) or str(value) in ("True", "False"):
        return cell == str(value)
    try:
        return abs(float(cell) - float(value)) <= 5.1e-4  # 3 decimals
    except ValueError:
        return cell == str(value)


def assert_tables_match_csvs(report: str, out: Path) -> int:
    """Every row of every table in report.md is a row of the CSV it names (on the table's columns)."""
    tables = parse_md_tables(report)
    assert tables, "report.md has no tables"
    n = 0
    for source, rows in tables.items():
        df = pd.read_csv(out / source)
        records = df.to_dict("records")
        for row in rows:
            hit = any(all(_same(cell, rec[col]) for col, cell in row.items()) for rec in records)
            assert hit, f"report row {row} is not in {source}"
            n += 1
    return n


def assert_checks_line(report: str, checks: pd.DataFrame) -> None:
    assert f"{int(checks.agree.sum())} of {len(checks)} checks agree" in report
