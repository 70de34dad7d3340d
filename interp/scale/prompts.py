"""Prompt datasets: a DataFrame, or a CSV / TSV / JSONL file, checked for the columns a method needs.

    facts = read_prompts("facts.jsonl", required=("prompt", "subject", "answer"))

CSV and JSONL files name their columns (a header row; one JSON object per line). A TSV may have a header
row naming every required column; without one its fields are the required columns in order (the
historical `prompt<TAB>subject<TAB>answer` format). Blank lines and, in TSV files, lines starting with `#`
are skipped. Text is kept verbatim: " Paris" and "Paris" are different tokens.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

PromptSource = pd.DataFrame | str | Path
FORMATS = (".csv", ".tsv", ".jsonl")


class PromptFileError(ValueError):
    """A prompt set that cannot be read or lacks a column: the message says where and what is allowed."""


def read_prompts(source: PromptSource, required: Sequence[str] = ("prompt",)) -> pd.DataFrame:
    """The rows of `source` as a DataFrame with a fresh 0..n-1 index; every `required` column present and
    non-empty. Extra columns are kept (a method may read `seed`, `counterfactual`, ...)."""
    if isinstance(source, pd.DataFrame):
        df, where = source.reset_index(drop=True), "the DataFrame"
    else:
        path = Path(source)
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise PromptFileError(f"cannot read prompts file {path}: {e.strerror or e}") from None
        df = _parse(text, path, list(required))
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise PromptFileError(f"{where}: missing column(s) {missing}; have {list(df.columns)}")
    if df.empty:
        raise PromptFileError(f"{where} is empty: nothing to run on")
    for c in required:
        blank = df[c].isna() | (df[c].astype(str).str.strip() == "")
        if blank.any():
            raise PromptFileError(f"{where}: row {int(blank.to_numpy().argmax())} has an empty {c!r}")
    return df


def _parse(text: str, path: Path, required: list[str]) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise PromptFileError(f"{path}:{i}: not a JSON object ({e.msg})") from None
            if not isinstance(row, dict):
                raise PromptFileError(
                    f"{path}:{i}: expected a JSON object per line, got {type(row).__name__}"
                )
            rows.append(row)
        return pd.DataFrame(rows)
    if suffix == ".csv":
        # keep_default_na=False: an answer like " None" or "NA" is text, not a missing value.
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=True)
    if suffix in (".tsv", ".txt", ""):
        return _parse_tsv(text, path, required)
    raise PromptFileError(f"{path}: unknown prompts format {suffix!r}; use one of {', '.join(FORMATS)}")


def _parse_tsv(text: str, path: Path, required: list[str]) -> pd.DataFrame:
    lines = [
        (i, ln) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.lstrip().startswith("#")
    ]
    if not lines:
        return pd.DataFrame(columns=required)
    first = lines[0][1].split("\t")
    header = first if set(required) <= set(first) else required
    body = lines[1:] if header is first else lines
    rows = []
    for i, line in body:
        parts = next(csv.reader([line], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(parts) != len(header):
            want = "<TAB>".join(header)
            raise PromptFileError(f"{path}:{i}: expected {len(header)} fields '{want}', got {line!r}")
        rows.append(parts)
    return pd.DataFrame(rows, columns=header)
