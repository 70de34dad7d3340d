"""Scoped hooks belong to the thread or asyncio task that opened them: a shared model gives right answers.

Each scenario of the hooks issue runs twice: with two real threads racing (the GIL switch interval is
shortened so they interleave finely), and with two asyncio tasks that `await` between entering a scope and
running the forward, which makes the interleaving deterministic. Every result is compared with a
reference computed alone, bitwise.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable

import pandas as pd
import pytest
import torch

from interp import HookedTransformer, ModelConfig
from interp.analysis import Resid, ablate, denoise, logit_diff

CFG = ModelConfig(d_model=16, n_layers=2, n_heads=2, d_head=8, d_mlp=32, d_vocab=20, n_ctx=8)
N = 500  # iterations per thread / task and scenario
P = torch.tensor([[1, 2, 3, 4, 5, 6]])
Q = torch.tensor([[7, 8, 9, 10, 11, 12]])
SHORT = torch.tensor([[3, 1, 4]])
SITES = [Resid(0, pos=5)]
METRIC = logit_diff(3, 5)
DENOISE_SITES = [Resid(0, pos=5), Resid(1, pos=5), Resid(1, pos=2)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = HookedTransformer(CFG)
    m.init_weights(std=0.3, seed=0)  # large weights: an ablation visibly moves every logit
    return m.eval()


@pytest.fixture(autouse=True)
def fine_switching():
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def zero(x, hook):
    return torch.zeros_like(x)


ZERO = [("blocks.0.hook_mlp_out", zero), ("blocks.1.hook_attn_out", zero)]


@pytest.fixture(scope="module")
def ref(model):
    """Every reference result, computed with no other thread or task around."""
    with torch.no_grad():
        clean_p, clean_q, clean_short = model(P), model(Q), model(SHORT)
        with model.hooks(ZERO):
            zeroed = model(P)
        with ablate(model, SITES):
            ablated = model(P)
        _, cache = model.run_with_cache(P)
    frame = denoise(model, P, Q, DENOISE_SITES, METRIC)
    assert not torch.equal(zeroed, clean_p) and not torch.equal(ablated, clean_p)
    return dict(
        clean_p=clean_p,
        clean_q=clean_q,
        clean_short=clean_short,
        zeroed=zeroed,
        ablated=ablated,
        cache={k: cache[k] for k in cache},
        denoise=frame,
    )


def race(a: Callable[[], bool], b: Callable[[], bool], n: int = N) -> tuple[int, int, list[str]]:
    """Run `a` n times in one thread and `b` n times in another, together; count wrong results of each."""
    wrong = [0, 0]
    errors: list[str] = []
    barrier = threading.Barrier(2)

    def loop(step: Callable[[], bool], slot: int) -> None:
        barrier.wait()
        for _ in range(n):
            try:
                ok = step()
            except Exception as e:  # a raise is a wrong result too; keep the first few for the message
                ok = False
                if len(errors) < 3:
                    errors.append(f"{type(e).__name__}: {e}")
            wrong[slot] += not ok

    threads = [threading.Thread(target=loop, args=(f, i)) for i, f in enumerate((a, b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return wrong[0], wrong[1], errors


def equal(x: torch.Tensor, y: torch.Tensor) -> bool:
    return torch.equal(x, y)


def frames_equal(x: pd.DataFrame, y: pd.DataFrame) -> bool:
    return x.drop(columns="normalized").equals(y.drop(columns="normalized"))


# ---- scenarios: the table, with threads -----------------------------------------------------------
def clean_forward(model, ref, tokens=P, key="clean_p"):
    def step() -> bool:
        with torch.no_grad():
            return equal(model(tokens), ref[key])

    return step


def test_threads_ablate_vs_clean(model, ref):
    def a() -> bool:
        with ablate(model, SITES), torch.no_grad():
            return equal(model(P), ref["ablated"])

    assert race(a, clean_forward(model, ref)) == (0, 0, [])


def test_threads_zeroing_hooks_vs_clean(model, ref):
    def a() -> bool:
        with model.hooks(ZERO), torch.no_grad():
            return equal(model(P), ref["zeroed"])

    assert race(a, clean_forward(model, ref)) == (0, 0, [])


def test_threads_cache_vs_other_prompt(model, ref):
    def a() -> bool:
        _, cache = model.run_with_cache(P)
        return len(cache) == len(ref["cache"]) and all(equal(cache[k], v) for k, v in ref["cache"].items())

    assert race(a, clean_forward(model, ref, Q, "clean_q")) == (0, 0, [])


def test_threads_position_ablation_vs_short_prompts(model, ref):
    """A's Resid(0, pos=5) ablation must not raise its position error in B's 3-token forwards."""

    def a() -> bool:
        with ablate(model, SITES), torch.no_grad():
            return equal(model(P), ref["ablated"])

    assert race(a, clean_forward(model, ref, SHORT, "clean_short")) == (0, 0, [])


def test_threads_denoise_vs_clean(model, ref):
    def a() -> bool:
        return frames_equal(denoise(model, P, Q, DENOISE_SITES, METRIC), ref["denoise"])

    assert race(a, clean_forward(model, ref), n=N) == (0, 0, [])


# ---- the same with asyncio tasks: the other task's scope is open, across an await, during each forward -----
async def _hold(scope_factory, model, tokens, expected, n, wrong):
    for _ in range(n):
        with scope_factory():
            await asyncio.sleep(0)  # the other task runs while this scope is open
            with torch.no_grad():
                wrong[0] += not equal(model(tokens), expected)
        await asyncio.sleep(0)


async def _check(step, n, wrong):
    for _ in range(n):
        await asyncio.sleep(0)
        try:
            wrong[1] += not step()
        except Exception:
            wrong[1] += 1


def gather(*coros):
    async def main():
        await asyncio.gather(*coros)

    asyncio.run(main())


def test_tasks_ablate_vs_clean(model, ref):
    wrong = [0, 0]
    gather(
        _hold(lambda: ablate(model, SITES), model, P, ref["ablated"], N, wrong),
        _check(clean_forward(model, ref), N, wrong),
    )
    assert wrong == [0, 0]


def test_tasks_zeroing_hooks_vs_clean(model, ref):
    wrong = [0, 0]
    gather(
        _hold(lambda: model.hooks(ZERO), model, P, ref["zeroed"], N, wrong),
        _check(clean_forward(model, ref), N, wrong),
    )
    assert wrong == [0, 0]


def test_tasks_cache_vs_other_scope(model, ref):
    """A task's run_with_cache, while another task holds a zeroing scope open on another prompt."""

    def cached() -> bool:
        _, cache = model.run_with_cache(P)
        return all(equal(cache[k], v) for k, v in ref["cache"].items())

    wrong = [0, 0]
    gather(
        _hold(lambda: model.hooks(ZERO), model, Q, _zeroed(model, Q), N, wrong),
        _check(cached, N, wrong),
    )
    assert wrong == [0, 0]


def test_tasks_position_ablation_vs_short_prompts(model, ref):
    wrong = [0, 0]
    gather(
        _hold(lambda: ablate(model, SITES), model, P, ref["ablated"], N, wrong),
        _check(clean_forward(model, ref, SHORT, "clean_short"), N, wrong),
    )
    assert wrong == [0, 0]


def test_tasks_denoise_vs_other_scope(model, ref):
    wrong = [0, 0]
    gather(
        _hold(lambda: model.hooks(ZERO), model, P, ref["zeroed"], N, wrong),
        _check(
            lambda: frames_equal(denoise(model, P, Q, DENOISE_SITES, METRIC), ref["denoise"]),
            N,
            wrong,
        ),
    )
    assert wrong == [0, 0]


def _zeroed(model, tokens):
    with model.hooks(ZERO), torch.no_grad():
        return model(tokens)


# ---- context rules ------------------------------------------------------------------------------------------
def test_plain_thread_inherits_no_scope(model, ref):
    seen = {}
    with model.hooks(ZERO), torch.no_grad():
        t = threading.Thread(target=lambda: seen.update(out=model(P), count=model.hook_count()))
        t.start()
        t.join()
        assert equal(model(P), ref["zeroed"]) and model.hook_count() == 2
    assert equal(seen["out"], ref["clean_p"]) and seen["count"] == 0


def test_child_task_sees_parent_scope_only_while_open(model, ref):
    async def main():
        opened, closed = asyncio.Event(), asyncio.Event()
        results = {}

        async def child():
            with torch.no_grad():
                results["inside"] = model(P)
                opened.set()
                await closed.wait()
                results["after"] = model(P)

        with model.hooks(ZERO):
            task = asyncio.create_task(child())
            await opened.wait()
        closed.set()
        await task
        return results

    results = asyncio.run(main())
    assert equal(results["inside"], ref["zeroed"])
    assert equal(results["after"], ref["clean_p"])


def test_to_thread_sees_parent_scope_only_while_open(model, ref):
    closed = threading.Event()

    def late() -> torch.Tensor:
        closed.wait(timeout=10)
        with torch.no_grad():
            return model(P)

    def now() -> torch.Tensor:
        with torch.no_grad():
            return model(P)

    async def main():
        with model.hooks(ZERO):
            inside = await asyncio.to_thread(now)
            pending = asyncio.ensure_future(asyncio.to_thread(late))
            await asyncio.sleep(0)
        closed.set()
        return inside, await pending

    inside, after = asyncio.run(main())
    assert equal(inside, ref["zeroed"]) and equal(after, ref["clean_p"])


def test_explicit_path_is_per_context(model, monkeypatch):
    """A hook on hook_pattern in one thread forces the explicit attention path there only."""
    attn_cls = type(model.blocks[0].attn)
    original = attn_cls._explicit
    callers: list[int] = []

    def counting(self, *a):
        callers.append(threading.get_ident())
        return original(self, *a)

    monkeypatch.setattr(attn_cls, "_explicit", counting)
    other = {}
    with model.hooks([("blocks.0.attn.hook_pattern", lambda x, h: None)]), torch.no_grad():
        model(P)
        t = threading.Thread(
            target=lambda: other.update(
                active=model.blocks[0].attn.hook_pattern.active, ident=threading.get_ident(), out=model(P)
            )
        )
        t.start()
        t.join()
    assert callers == [threading.get_ident()]  # the main thread's run, once; none from the other thread
    assert other["active"] is False


def test_ctx_belongs_to_the_scope(model):
    """Two threads counting in hook.ctx at the same point never see each other's counts."""
    counts: dict[int, list[int]] = {}

    def count(x, hook):
        hook.ctx["n"] = hook.ctx.get("n", 0) + 1

    def worker(slot: int) -> None:
        seen = []
        with model.hooks([("blocks.0.hook_resid_pre", count)]), torch.no_grad():
            for _ in range(200):
                model(P)
                seen.append(model.blocks[0].hook_resid_pre.ctx["n"])
        counts[slot] = seen

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counts[0] == counts[1] == list(range(1, 201))
    assert model.blocks[0].hook_resid_pre.ctx == {}  # outside any scope: the (empty) model-wide dict


def test_persistent_hooks_are_model_wide(model, ref):
    """TransformerLens-style hooks reach every thread, and reset_hooks() in one removes them for all."""
    try:
        model.add_hook("blocks.0.hook_mlp_out", zero)
        model.add_hook("blocks.1.hook_attn_out", zero)
        seen = {}
        t = threading.Thread(target=lambda: seen.update(out=model(P).detach()))
        t.start()
        t.join()
        assert equal(seen["out"], ref["zeroed"])
        t = threading.Thread(target=model.reset_hooks)
        t.start()
        t.join()
        with torch.no_grad():
            assert equal(model(P), ref["clean_p"]) and model.hook_count() == 0
    finally:
        model.reset_hooks(including_permanent=True)
