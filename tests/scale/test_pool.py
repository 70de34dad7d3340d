"""The local backend: each row's result is the recipe's own, in any shard layout; failures are retried,
then reported with their rows; resume skips written shards."""

from __future__ import annotations

import functools
import json

import pandas as pd
import pytest

import interp
from interp.analysis import ResidPre, causal_trace, denoise, logit_diff
from interp.scale import Pool, tasks

FACTS = pd.DataFrame(
    {
        "prompt": ["The capital of France is", "The capital of Spain is", "The language of Italy is"],
        "subject": ["France", "Spain", "Italy"],
        "answer": [" Paris", " Madrid", " Italian"],
    }
)
TRACE = functools.partial(tasks.causal_trace_row, windows={"resid": 1, "mlp": 2}, n_samples=2)


@pytest.fixture(scope="module")
def pool():
    with Pool(interp.load(), progress=False) as p:
        yield p


def test_each_row_is_the_recipes_result_with_its_own_seed(pool) -> None:
    df = pool.run(TRACE, FACTS, seed=10, shard_rows=2)
    assert list(df.columns[:2]) == ["shard", "row"] and df.groupby("row").shard.first().tolist() == [0, 0, 1]
    model = pool.model
    for i, fact in FACTS.iterrows():
        tokens = model.to_tokens(fact.prompt)
        ref = causal_trace(
            model, fact.prompt, fact.subject, " " + fact.answer.strip(), n_samples=2, seed=10 + i
        )
        got = df[(df.row == i) & (df.kind == "resid")]
        assert got.p_restored.tolist() == ref.p_restored.tolist()  # exactly: the same call, seed 10 + row
        assert (
            got.p_clean.iloc[0] == ref.attrs["p_clean"] and len(got) == tokens.shape[1] * model.cfg.n_layers
        )
    one = pool.run(TRACE, FACTS, seed=10, shard_rows=1)
    pd.testing.assert_frame_equal(one.drop(columns="shard"), df.drop(columns="shard"), check_exact=True)
    seeded = pool.run(TRACE, FACTS.assign(seed=[10, 10, 10]), seed=0)  # a seed column overrides the run's
    assert seeded[seeded.row == 0].p_restored.tolist() == df[df.row == 0].p_restored.tolist()
    assert seeded[seeded.row == 1].p_restored.tolist() != df[df.row == 1].p_restored.tolist()


def test_patching_row_is_denoise(pool) -> None:
    pair = {"prompt": "The capital of France is", "counterfactual": "The capital of Spain is"}
    pairs = pd.DataFrame([{**pair, "answer": " Paris", "counterfactual_answer": " Madrid"}])
    got = pool.run(tasks.patching_row, pairs)
    model = pool.model
    sites = ResidPre.every(model, model.to_tokens(pair["prompt"]).shape[1])
    ref = denoise(model, pair["prompt"], pair["counterfactual"], sites, logit_diff(" Paris", " Madrid"))
    assert got.metric.tolist() == ref.metric.tolist()
    assert got[got.layer == 0].normalized.max() == pytest.approx(
        1.0
    )  # the whole input restored at the subject
    approx = pool.run(tasks.attribution_row, pairs)
    assert approx.metric.iloc[0] == pytest.approx(
        ref.attrs["base_metric"]
    )  # nothing patched at layer 0 pos 0


class Flaky:
    """Fails on row `bad` the first `times` calls (or always), counting calls per row."""

    def __init__(self, bad: int, times: int) -> None:
        self.bad, self.times, self.calls = bad, times, {}

    def __call__(self, model, row, seed):
        i = FACTS.index[FACTS.prompt == row["prompt"]][0]
        self.calls[i] = self.calls.get(i, 0) + 1
        if i == self.bad and self.calls[i] <= self.times:
            raise RuntimeError(f"boom on row {i}")
        return {"prompt_len": len(row["prompt"])}


def test_a_failing_shard_is_retried_then_reported_with_its_rows(pool, tmp_path) -> None:
    flaky = Flaky(bad=1, times=1)
    df = pool.run(flaky, FACTS, shard_rows=1)
    assert df.row.tolist() == [0, 1, 2] and flaky.calls == {0: 1, 1: 2, 2: 1} and df.attrs["failed"] == []
    broken = Flaky(bad=2, times=10**9)
    with pytest.warns(RuntimeWarning, match=r"shard 1 \(rows \[2\]\): RuntimeError: boom on row 2"):
        df = pool.run(broken, FACTS, shard_rows=2, out=tmp_path)
    assert df.row.tolist() == [0, 1]  # the good shard is kept
    (failure,) = df.attrs["failed"]
    assert (failure.shard, failure.rows, failure.attempts) == (1, (2,), pool.retries + 1)
    assert json.loads((tmp_path / "failed.json").read_text())[0]["rows"] == [2]


def test_resume_skips_the_shards_already_written(pool, tmp_path) -> None:
    first = Flaky(bad=-1, times=0)
    df = pool.run(first, FACTS, shard_rows=1, out=tmp_path)
    (tmp_path / "shard-00001.parquet").unlink()  # as if the run had died before shard 1 was written
    again = Flaky(bad=-1, times=0)
    resumed = pool.run(again, FACTS, out=tmp_path, resume=True)
    assert again.calls == {1: 1}  # only the missing shard ran
    pd.testing.assert_frame_equal(resumed, df, check_exact=True)
    with pytest.raises(ValueError, match="holds shards of other data or another task"):
        pool.run(again, FACTS.iloc[:2], out=tmp_path, resume=True)


def test_bad_arguments_are_clear_errors(pool) -> None:
    with pytest.raises(ValueError, match="backend must be one of"):
        Pool(backend="spark")
    with pytest.raises(ValueError, match="not a loaded model"):
        Pool(pool.model, backend="ray")
    with pytest.raises(ValueError, match="resume needs out="):
        pool.run(TRACE, FACTS, resume=True)
    with pytest.warns(RuntimeWarning, match="returned float; return a DataFrame, a dict or a list of dicts"):
        df = Pool(pool.model, retries=0, progress=False).run(lambda m, r, s: 1.0, FACTS)
    assert [f.rows for f in df.attrs["failed"]] == [(0,), (1,), (2,)]
