"""Prompt sets from a DataFrame, CSV, TSV (with or without a header) and JSONL read the same rows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from interp.scale import PromptFileError, read_prompts

ROWS = pd.DataFrame(
    {
        "prompt": ["The capital of France is", 'A, "quoted" prompt'],
        "subject": ["France", "A"],
        "answer": [" Paris", " NA"],
    }
)
NEED = ("prompt", "subject", "answer")


def test_every_format_reads_the_same_rows(tmp_path) -> None:
    (tmp_path / "f.csv").write_text(ROWS.to_csv(index=False))
    (tmp_path / "f.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS.to_dict("records")) + "\n\n")
    (tmp_path / "f.tsv").write_text(
        "# a comment\n" + "\n".join("\t".join(r) for r in ROWS.itertuples(index=False))
    )
    (tmp_path / "h.tsv").write_text("answer\tprompt\tsubject\n" + "\n".join(f"{a}\t{p}\t{s}" for p, s, a in ROWS.itertuples(index=False)))  # fmt: skip
    for name in ("f.csv", "f.jsonl", "f.tsv", "h.tsv"):
        got = read_prompts(tmp_path / name, NEED)
        pd.testing.assert_frame_equal(got[list(NEED)], ROWS, obj=name)  # " NA" stays text, spaces kept
    pd.testing.assert_frame_equal(read_prompts(ROWS.set_index("subject", drop=False), NEED), ROWS)


def test_bad_files_are_clear_errors(tmp_path) -> None:
    (tmp_path / "short.tsv").write_text("The capital of France is\tFrance\n")
    (tmp_path / "bad.jsonl").write_text('{"prompt": "x"}\nnot json\n')
    (tmp_path / "f.parquet").write_text("")
    (tmp_path / "blank.csv").write_text("prompt,subject,answer\nx,,y\n")
    cases = {
        "short.tsv": "short.tsv:1: expected 3 fields 'prompt<TAB>subject<TAB>answer'",
        "bad.jsonl": "bad.jsonl:2: not a JSON object",
        "f.parquet": "unknown prompts format '.parquet'; use one of .csv, .tsv, .jsonl",
        "blank.csv": "row 0 has an empty 'subject'",
        "missing.csv": "cannot read prompts file",
    }
    for name, message in cases.items():
        with pytest.raises(PromptFileError, match=message.replace("(", r"\(").replace(".", r"\.")):
            read_prompts(tmp_path / name, NEED)
    with pytest.raises(PromptFileError, match=r"missing column\(s\) \['answer'\]"):
        read_prompts(ROWS.drop(columns="answer"), NEED)
