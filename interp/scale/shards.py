"""Shards of a dataset run: which rows each holds, and their results on disk (for `resume`).

A run's folder holds `spec.json` (what was run over which rows, and the shard layout) and one
`shard-NNNNN.parquet` per finished shard, written atomically (to a temporary name, then renamed), so a
killed run leaves only whole shards. Resuming checks that the data and the task are the ones the folder
was made for, reuses its layout and skips the shards already written.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

SPEC = "spec.json"


@dataclass(frozen=True)
class Shard:
    index: int
    rows: tuple[int, ...]  # positions in the dataset


@dataclass(frozen=True)
class ShardFailure:
    """A shard that failed on every attempt: its rows are not in the result."""

    shard: int
    rows: tuple[int, ...]
    attempts: int
    error: str


def layout(n_rows: int, shard_rows: int) -> list[Shard]:
    """Consecutive shards of `shard_rows` rows (the last may be shorter)."""
    if shard_rows < 1:
        raise ValueError(f"shard_rows must be >= 1, got {shard_rows}")
    return [
        Shard(i, tuple(range(a, min(a + shard_rows, n_rows))))
        for i, a in enumerate(range(0, n_rows, shard_rows))
    ]


def default_shard_rows(n_rows: int, workers: int) -> int:
    """About four shards per worker (so a slow shard does not leave the others idle), at most 64 rows."""
    return max(1, min(64, math.ceil(n_rows / (4 * max(1, workers)))))


def fingerprint(data: pd.DataFrame, task: Callable[..., Any], seed: int) -> str:
    """A hash of the rows, the task (with its bound arguments) and the base seed."""
    h = hashlib.sha256(data.to_json(orient="split", default_handler=str).encode())
    try:
        h.update(pickle.dumps(task))
    except Exception:  # a lambda or closure: its qualified name is the best we have
        h.update(repr(getattr(task, "__qualname__", task)).encode())
    h.update(str(seed).encode())
    return h.hexdigest()


class ShardDir:
    """One run's folder of shard results."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def shard_path(self, index: int) -> Path:
        return self.path / f"shard-{index:05d}.parquet"

    def prepare(self, fp: str, shard_rows: int, n_rows: int, resume: bool) -> tuple[int, set[int]]:
        """(shard_rows to use, indices already written). Without `resume` old shards are removed."""
        self.path.mkdir(parents=True, exist_ok=True)
        spec_file = self.path / SPEC
        if resume and spec_file.exists():
            spec = json.loads(spec_file.read_text())
            if spec["fingerprint"] != fp or spec["n_rows"] != n_rows:
                raise ValueError(
                    f"cannot resume in {self.path}: it holds shards of other data or another task "
                    f"({spec['n_rows']} rows, fingerprint {spec['fingerprint'][:12]}); use a new folder or "
                    "run without resume"
                )
            shard_rows = int(spec["shard_rows"])
            n_shards = len(layout(n_rows, shard_rows))
            done = {i for i in range(n_shards) if self.shard_path(i).exists()}
            return shard_rows, done
        for old in self.path.glob("shard-*.parquet"):
            old.unlink()
        spec = {"fingerprint": fp, "n_rows": n_rows, "shard_rows": shard_rows}
        tmp = spec_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(spec, indent=1))
        os.replace(tmp, spec_file)
        return shard_rows, set()

    def write(self, index: int, df: pd.DataFrame) -> None:
        target = self.shard_path(index)
        tmp = target.with_name(target.name + ".tmp")
        df.to_parquet(tmp, index=False)
        os.replace(tmp, target)

    def read(self, index: int) -> pd.DataFrame:
        return pd.read_parquet(self.shard_path(index))

    def write_failures(self, failures: list[ShardFailure]) -> None:
        path = self.path / "failed.json"
        if failures:
            path.write_text(json.dumps([f.__dict__ for f in failures], indent=1))
        elif path.exists():
            path.unlink()
