"""Dataset-scale sweeps: many prompts, split into shards, each shard run by a worker with its own model.

    with Pool("tiny-facts", backend="ray", workers=2) as pool:       # or backend="local" (in-process)
        df = pool.run(tasks.causal_trace_row, facts, out="runs/shards/trace")

- `backend="local"` runs the shards in this process on one model (a loaded model may be passed);
  `backend="ray"` starts `workers` Ray actors, each loading the model once from the same source, on a local
  cluster (`ray.init()`) or an existing one (`address=`). The pool keeps its workers across `run` calls.
- The result is one tidy DataFrame in dataset order, with `shard` and `row` (the row's position in the
  data) first. Both backends run the same rows through the same task with the same per-row seed and the
  same torch thread count, so their numbers are equal.
- A shard that raises is retried `retries` times; on Ray a worker that dies is replaced (a fresh model
  replica) and its shard retried. A shard failing every attempt is reported: `df.attrs["failed"]` lists
  each `ShardFailure` with its rows, `out/failed.json` too, and a warning names them.
- With `out`, each finished shard is written there; `resume=True` skips the shards already written.
- One progress bar counts rows across all workers.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from interp.scale.prompts import PromptSource, read_prompts
from interp.scale.rows import Row, Task, row_items, run_rows, torch_threads
from interp.scale.shards import Shard, ShardDir, ShardFailure, default_shard_rows, fingerprint, layout

BACKENDS = ("local", "ray")


class Pool:
    """Workers holding model replicas; `run` maps a per-row task over a dataset. See the module docstring."""

    def __init__(
        self,
        model: Any = None,
        *,
        backend: str = "local",
        workers: int = 1,
        address: str | None = None,
        threads: int = 1,
        retries: int = 2,
        progress: bool = True,
        ray_init: dict[str, Any] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if workers < 1 or threads < 1 or retries < 0:
            raise ValueError(
                f"need workers >= 1, threads >= 1, retries >= 0; got {workers}, {threads}, {retries}"
            )
        if backend == "ray" and _is_model(model):
            raise ValueError(
                "backend='ray' loads one replica per worker from a source: pass the model's name, folder or "
                "hub id (None for the embedded default), not a loaded model"
            )
        self.source, self.backend, self.workers = model, backend, workers
        self.threads, self.retries, self.progress = threads, retries, progress
        self._local_model = model if _is_model(model) else None
        self._ray: Any = None
        if backend == "ray":
            from interp.scale.ray_backend import RayWorkers

            self._ray = RayWorkers(model, workers, threads, address, ray_init or {})

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (and the Ray cluster, if this pool started it)."""
        if self._ray is not None:
            self._ray.close()
            self._ray = None

    @property
    def model(self) -> Any:
        """The local backend's model (loaded from the source on first use)."""
        if self._local_model is None:
            from interp.loading import load

            self._local_model = load(self.source)
        return self._local_model

    def run(
        self,
        task: Task,
        data: PromptSource,
        *,
        out: str | Path | None = None,
        resume: bool = False,
        shard_rows: int | None = None,
        seed: int = 0,
        required: tuple[str, ...] = (),
        desc: str | None = None,
    ) -> pd.DataFrame:
        """`task(model, row, seed)` over every row of `data`, as one tidy DataFrame (see the module doc)."""
        if self.backend == "ray" and self._ray is None:
            raise RuntimeError("this pool is closed")
        data = read_prompts(data, required) if required or not isinstance(data, pd.DataFrame) else data
        data = data.reset_index(drop=True)
        if data.empty:
            raise ValueError("the dataset has no rows: nothing to run")
        if resume and out is None:
            raise ValueError("resume needs out=, the folder the earlier run wrote its shards to")
        n = len(data)
        shard_rows = shard_rows or default_shard_rows(n, self.workers)
        store = ShardDir(Path(out)) if out is not None else None
        done: set[int] = set()
        if store is not None:
            shard_rows, done = store.prepare(fingerprint(data, task, seed), shard_rows, n, resume)
        shards = layout(n, shard_rows)
        results = {i: store.read(i) for i in sorted(done)} if store is not None else {}
        todo = [(s, row_items(data, s.rows, seed)) for s in shards if s.index not in done]
        name = (
            desc
            or getattr(task, "__name__", None)
            or getattr(getattr(task, "func", None), "__name__", "rows")
        )
        bar = tqdm(
            total=n, initial=sum(len(shards[i].rows) for i in done), desc=name, disable=not self.progress
        )

        def finished(shard: Shard, df: pd.DataFrame) -> None:
            results[shard.index] = df
            if store is not None:
                store.write(shard.index, df)

        try:
            if self.backend == "ray":
                failures = self._ray.run(task, todo, finished, self.retries, bar)
            else:
                failures = self._run_local(task, todo, finished, bar)
        finally:
            bar.close()
        if store is not None:
            store.write_failures(failures)
        frames = [results[i] for i in sorted(results)]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["shard", "row"])
        df.attrs["failed"] = failures
        if failures:
            lost = ", ".join(f"shard {f.shard} (rows {list(f.rows)}): {f.error}" for f in failures)
            warnings.warn(
                f"{len(failures)} shard(s) failed on every attempt: {lost}", RuntimeWarning, stacklevel=2
            )
        return df

    def _run_local(
        self,
        task: Task,
        todo: list[tuple[Shard, list[Row]]],
        finished: Callable[[Shard, pd.DataFrame], None],
        bar: Any,
    ) -> list[ShardFailure]:
        failures = []
        model = self.model
        with torch_threads(self.threads):
            for shard, rows in todo:
                start = bar.n
                for attempt in range(1, self.retries + 2):
                    try:
                        df = run_rows(model, task, shard.index, rows, lambda: bar.update(1))
                    except Exception as e:  # the task's own error: retried, then reported with its rows
                        bar.n = start
                        bar.refresh()
                        if attempt > self.retries:
                            failures.append(ShardFailure(shard.index, shard.rows, attempt, _describe(e)))
                        continue
                    finished(shard, df)
                    break
        return failures


def run_dataset(task: Task, data: PromptSource, model: Any = None, **kwargs: Any) -> pd.DataFrame:
    """One `Pool(model, backend=..., workers=..., ...)` for one `run(task, data, out=..., ...)`."""
    run_keys = {"out", "resume", "shard_rows", "seed", "required", "desc"}
    with Pool(model, **{k: v for k, v in kwargs.items() if k not in run_keys}) as pool:
        return pool.run(task, data, **{k: v for k, v in kwargs.items() if k in run_keys})


def _is_model(model: Any) -> bool:
    return model is not None and not isinstance(model, (str, Path))


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"
