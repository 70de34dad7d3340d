"""The Ray backend of `Pool`: one actor per worker, each loading its model replica once.

Shards go to idle actors one at a time (a worker that finishes early takes the next shard). Each actor
counts its rows in a small progress actor that the driver polls for the one progress bar. A task that
raises comes back as `RayTaskError` and the shard is retried; an actor that dies (`RayActorError`) is
replaced by a fresh one, which loads the model again, and its shard is retried.
"""

from __future__ import annotations

import os
import warnings
from collections import deque
from collections.abc import Callable
from typing import Any

import pandas as pd

from interp.scale.rows import Row, Task, run_rows
from interp.scale.shards import Shard, ShardFailure


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError("backend='ray' needs Ray: pip install 'interp[scale]'") from None
    return ray


class _Worker:
    """A Ray actor: the model, loaded once from `source`, and the torch thread count of every backend."""

    def __init__(self, source: Any, threads: int) -> None:
        import torch

        from interp.loading import load

        torch.set_num_threads(threads)
        self.model = load(source)

    def run(self, task: Task, shard: int, rows: list[Row], progress: Any) -> pd.DataFrame:
        return run_rows(self.model, task, shard, rows, lambda: progress.add.remote(shard))

    def pid(self) -> int:
        return os.getpid()


class _Progress:
    """Rows done per shard; a retried shard starts again from zero."""

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, shard: int) -> None:
        self.counts[shard] = self.counts.get(shard, 0) + 1

    def reset(self, shard: int) -> None:
        self.counts.pop(shard, None)

    def total(self) -> int:
        return sum(self.counts.values())


class RayWorkers:
    def __init__(
        self, source: Any, workers: int, threads: int, address: str | None, init: dict[str, Any]
    ) -> None:
        ray = _ray()
        self.owned = not ray.is_initialized()
        if self.owned:
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, **init}
            if address is None:
                kwargs.setdefault("num_cpus", max(workers * threads, os.cpu_count() or 1))
            ray.init(address=address, **kwargs)
        need = workers * threads
        total, free = ray.cluster_resources().get("CPU", 0), ray.available_resources().get("CPU", 0)
        if total < need:
            raise ValueError(
                f"{workers} workers x {threads} threads need {need} CPUs; the Ray cluster has {total:g}, so "
                "some would never start (fewer workers, or a bigger cluster)"
            )
        if free < need:
            warnings.warn(
                f"the Ray cluster has {free:g} of {total:g} CPUs free; {need} are needed, so some workers "
                "wait until others (another pool?) release theirs",
                RuntimeWarning,
                stacklevel=3,
            )
        self.source, self.threads = source, threads
        self._actor_cls = ray.remote(num_cpus=threads)(_Worker)
        self.actors = [self._new_actor() for _ in range(workers)]
        self.progress = ray.remote(num_cpus=0)(_Progress).remote()

    def _new_actor(self) -> Any:
        return self._actor_cls.remote(self.source, self.threads)

    def pids(self) -> list[int]:
        ray = _ray()
        return ray.get([a.pid.remote() for a in self.actors])

    def run(
        self,
        task: Task,
        todo: list[tuple[Shard, list[Row]]],
        finished: Callable[[Shard, pd.DataFrame], None],
        retries: int,
        bar: Any,
    ) -> list[ShardFailure]:
        ray = _ray()
        task_ref = ray.put(task)  # sent once, not once per shard
        queue = deque(todo)
        attempts: dict[int, int] = {}
        idle = list(self.actors)
        inflight: dict[Any, tuple[Any, Shard, list[Row]]] = {}
        failures: list[ShardFailure] = []
        base, n_todo = bar.n, sum(len(rows) for _, rows in todo)
        done_rows = 0
        while queue or inflight:
            while queue and idle:
                actor = idle.pop()
                shard, rows = queue.popleft()
                attempts[shard.index] = attempts.get(shard.index, 0) + 1
                inflight[actor.run.remote(task_ref, shard.index, rows, self.progress)] = (actor, shard, rows)
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
            for ref in ready:
                actor, shard, rows = inflight.pop(ref)
                try:
                    df = ray.get(ref)
                except ray.exceptions.RayActorError as e:  # the worker died: replace it, retry the shard
                    self.actors[self.actors.index(actor)] = fresh = self._new_actor()
                    idle.append(fresh)
                    self._retry(shard, rows, attempts, retries, queue, failures, f"worker died: {e}")
                except ray.exceptions.RayTaskError as e:
                    idle.append(actor)
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    self._retry(
                        shard, rows, attempts, retries, queue, failures, f"{type(cause).__name__}: {cause}"
                    )
                else:
                    idle.append(actor)
                    finished(shard, df)
                    done_rows += len(rows)
            counted = ray.get(self.progress.total.remote())  # finished shards' rows included
            bar.n = base + min(max(counted, done_rows), n_todo)
            bar.refresh()
        bar.n = base + done_rows
        bar.refresh()
        return failures

    def _retry(
        self,
        shard: Shard,
        rows: list[Row],
        attempts: dict[int, int],
        retries: int,
        queue: deque,
        failures: list[ShardFailure],
        error: str,
    ) -> None:
        self.progress.reset.remote(shard.index)
        if attempts[shard.index] > retries:
            failures.append(ShardFailure(shard.index, shard.rows, attempts[shard.index], error))
        else:
            queue.append((shard, rows))

    def close(self) -> None:
        ray = _ray()
        for a in self.actors:
            ray.kill(a)
        ray.kill(self.progress)
        self.actors = []
        if self.owned:
            ray.shutdown()
