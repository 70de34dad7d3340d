"""Running one shard's rows: the code every backend shares, so local and Ray results are the same numbers.

A task is `task(model, row, seed) -> DataFrame | dict | list[dict]`: one prompt's analysis (a call to an
`interp.analysis` recipe) on a dict of the row's columns. Its seed is the row's `seed` column when the
data has one, else the run's seed plus the row's position in the dataset: a function of the row, never of
the shard it lands in, so any layout and any backend draw the same noise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import torch

Task = Callable[[Any, dict[str, Any], int], Any]
Row = tuple[int, dict[str, Any], int]  # (position in the dataset, the row's columns, its seed)


def row_items(data: pd.DataFrame, positions: Sequence[int], seed: int) -> list[Row]:
    out = []
    for i in positions:
        row = {k: _plain(v) for k, v in data.iloc[i].items()}
        out.append((i, row, int(row["seed"]) if "seed" in row else seed + i))
    return out


def run_rows(
    model: Any, task: Task, shard: int, rows: Sequence[Row], on_row: Callable[[], None] = lambda: None
) -> pd.DataFrame:
    """The task over each row, as one frame with `shard` and `row` columns first."""
    frames = []
    for i, row, seed in rows:
        df = as_frame(task(model, row, seed), task)
        df.insert(0, "row", i)
        df.insert(0, "shard", shard)
        frames.append(df)
        on_row()
    return pd.concat(frames, ignore_index=True)


def as_frame(out: Any, task: Task) -> pd.DataFrame:
    if isinstance(out, pd.DataFrame):
        df = out.reset_index(drop=True).copy()
        df.attrs = {}
    elif isinstance(out, dict):
        df = pd.DataFrame([out])
    elif isinstance(out, list) and all(isinstance(r, dict) for r in out):
        df = pd.DataFrame(out)
    else:
        name = getattr(task, "__name__", repr(task))
        raise TypeError(
            f"task {name} returned {type(out).__name__}; return a DataFrame, a dict or a list of dicts"
        )
    clash = [c for c in ("shard", "row") if c in df.columns]
    if clash:
        raise ValueError(f"a task's result may not have the columns {clash}: the runner adds them")
    return df


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with `n` torch threads (the same count in every backend), restoring the old count after."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _plain(v: Any) -> Any:
    """numpy scalars as Python ones, so a row pickles and compares the same in every process."""
    return v.item() if hasattr(v, "item") and getattr(v, "ndim", 1) == 0 else v
