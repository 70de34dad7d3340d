"""The Ray backend on a local cluster of 2 CPUs: the same numbers as the local backend (rows, and the
experiment's CSVs), a worker that dies is replaced, a shard that keeps failing is reported with its rows.
Kept to one cluster and few pools: Ray's start-up takes tens of seconds on 2 busy cores."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest
import ray

import interp
from interp.cli import main as cli_main
from interp.scale import Pool, tasks

FACTS = pd.DataFrame(
    {
        "prompt": ["The capital of France is", "The capital of Spain is", "The language of Italy is"],
        "subject": ["France", "Spain", "Italy"],
        "answer": [" Paris", " Madrid", " Italian"],
    }
)
TRACE = functools.partial(tasks.causal_trace_row, windows={"resid": 1, "attn": 2}, n_samples=2)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test file
    yield
    ray.shutdown()


def test_factual_recall_csvs_equal_local(cluster, tmp_path) -> None:
    # First in the file: the module's pool below holds both CPUs of the cluster until the module ends.
    prompts = tmp_path / "facts.jsonl"
    prompts.write_text("\n".join(json.dumps(r) for r in FACTS.to_dict("records")))
    runs = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        args = ["run", "factual-recall", "--quick", "--prompts", str(prompts), "--workers", "2"]
        assert cli_main([*args, "--backend", backend, "--out", str(out)]) == 0
        runs[backend] = out
    shards = sorted((runs["ray"] / "shards").glob("*/shard-*.parquet"))
    assert len(shards) >= 4 and len({pd.read_parquet(s).shard.iloc[0] for s in shards}) >= 2
    for csv in sorted(p.name for p in runs["local"].glob("*.csv")):
        a, b = pd.read_csv(runs["local"] / csv), pd.read_csv(runs["ray"] / csv)
        pd.testing.assert_frame_equal(b, a, check_exact=False, atol=1e-6, rtol=0, obj=csv)
    assert len(pd.read_csv(runs["ray"] / "facts.csv")) == 3


@pytest.fixture(scope="module")
def pool(cluster):
    with Pool(None, backend="ray", workers=2, retries=1, progress=False) as p:
        yield p


def test_ray_rows_equal_local_rows(pool) -> None:
    with Pool(interp.load(), progress=False) as local:
        want = [local.run(t, FACTS, seed=3, shard_rows=1) for t in (TRACE, tasks.lens_row)]
    got = [pool.run(t, FACTS, seed=3, shard_rows=1) for t in (TRACE, tasks.lens_row)]
    for g, w in zip(got, want, strict=True):
        pd.testing.assert_frame_equal(g, w, check_exact=False, atol=1e-6, rtol=0)
        assert g.equals(w)  # in fact bit for bit: same rows, seeds and thread count
    pids = pool.run(lambda model, row, seed: {"pid": os.getpid()}, FACTS, shard_rows=1).pid
    assert len(set(pids)) == 2 and os.getpid() not in set(pids)  # two workers, neither of them us


def dies_once(model, row, seed, marker: str):
    if row["subject"] == "Spain" and not os.path.exists(marker):
        Path(marker).write_text("died")
        os._exit(1)  # the worker process dies mid-shard, as a killed or OOM-ed worker would
    return {"n_tokens": model.to_tokens(row["prompt"]).shape[1]}


def fails_on_italy(model, row, seed):
    if row["subject"] == "Italy":
        raise ValueError("no Italy today")
    return {"ok": True}


def test_a_dead_worker_is_replaced_and_a_failing_shard_reported(pool, tmp_path) -> None:
    marker = tmp_path / "died"
    df = pool.run(functools.partial(dies_once, marker=str(marker)), FACTS, shard_rows=1)
    assert marker.exists() and df.row.tolist() == [0, 1, 2] and df.attrs["failed"] == []
    assert df.n_tokens.tolist() == [interp.load().to_tokens(p).shape[1] for p in FACTS.prompt]
    with pytest.warns(RuntimeWarning, match=r"shard 1 \(rows \[2\]\): ValueError: no Italy today"):
        df = pool.run(fails_on_italy, FACTS, shard_rows=2, out=tmp_path / "o")
    assert df.row.tolist() == [0, 1] and [(f.rows, f.attempts) for f in df.attrs["failed"]] == [((2,), 2)]
    assert json.loads((tmp_path / "o" / "failed.json").read_text())[0]["rows"] == [2]
