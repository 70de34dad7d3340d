"""Dataset-scale causal tracing: the local backend vs Ray workers, side by side in one run.

512 of the default embedded model's fact prompts (tiny-facts-2's English template-0 facts, cycled if fewer) each get a ROME hidden-state
trace (every layer x position, `--samples` noise samples) through `interp.scale.Pool`, first in-process,
then on a local Ray cluster of `--workers` workers (one model replica each, 1 torch thread everywhere).
Printed: Ray's start-up (cluster, then workers loading their models), each backend's run time and
throughput, the speed-up, and the largest difference between the two results (it must be 0).

    .venv/bin/python experiments/benchmarks/ray_sweep.py                 # 512 facts, 2 workers
    .venv/bin/python experiments/benchmarks/ray_sweep.py --facts 32      # smoke test
"""

from __future__ import annotations

import argparse
import functools
import itertools
import os
import time

import pandas as pd


def facts(n: int) -> pd.DataFrame:
    """`n` template-0 fact prompts of the default embedded model's world (English), cycled if it has fewer."""
    from experiments.worlds import world_for

    world = world_for(None)
    rows = [
        {"prompt": e.prompt, "subject": e.subject, "answer": e.answer} for e in world.facts(world.relations)
    ]
    return pd.DataFrame(list(itertools.islice(itertools.cycle(rows), n)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--facts", type=int, default=512)
    p.add_argument("--samples", type=int, default=10, help="noise samples per trace (ROME: 10)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()

    import ray

    import interp
    from interp.scale import Pool, tasks

    data = facts(args.facts)
    task = functools.partial(tasks.causal_trace_row, windows={"resid": 1}, n_samples=args.samples)
    shard_rows = max(1, args.facts // (4 * args.workers))

    t0 = time.perf_counter()
    model = interp.load()
    load_s = time.perf_counter() - t0
    with Pool(model, progress=False) as local:
        t0 = time.perf_counter()
        want = local.run(task, data, shard_rows=shard_rows)
        local_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    init_s = time.perf_counter() - t0
    with Pool(None, backend="ray", workers=args.workers, progress=False) as pool:
        t0 = time.perf_counter()
        pool._ray.pids()  # every worker has loaded its model
        workers_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        got = pool.run(task, data, shard_rows=shard_rows)
        ray_s = time.perf_counter() - t0
    ray.shutdown()

    diff = float((got.p_restored - want.p_restored).abs().max())
    rows = len(want)
    print(f"{args.facts} facts, {rows} traced cells, {args.samples} samples each, {os.cpu_count()} cores")
    print(f"{'':28}{'local':>12}{'ray x' + str(args.workers):>12}")
    print(f"{'start-up (s)':28}{load_s:>12.2f}{init_s + workers_s:>12.2f}")
    print(f"{'  cluster / workers (s)':28}{'':>12}{f'{init_s:.1f} / {workers_s:.1f}':>12}")
    print(f"{'sweep (s)':28}{local_s:>12.2f}{ray_s:>12.2f}")
    print(f"{'facts / s':28}{args.facts / local_s:>12.2f}{args.facts / ray_s:>12.2f}")
    print(f"{'speed-up (sweep only)':28}{'1.00':>12}{local_s / ray_s:>12.2f}")
    total_local, total_ray = load_s + local_s, init_s + workers_s + ray_s
    print(f"{'speed-up (with start-up)':28}{'1.00':>12}{total_local / total_ray:>12.2f}")
    print(f"max |ray - local| of p_restored: {diff:.1e}")


if __name__ == "__main__":
    main()
