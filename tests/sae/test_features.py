"""Feature tables against brute-force references computed in the test."""

from __future__ import annotations

import pytest
import torch
from conftest import make_hf

import interp
from interp.sae import SAE, SAEConfig
from interp.sae.features import (
    activation_histogram,
    activation_stats,
    prompt_latents,
    top_contexts,
    top_latents,
    vocab_projection,
)


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load(make_hf("gpt2"))


@pytest.fixture(scope="module")
def sae() -> SAE:
    s = SAE(SAEConfig("topk", d_in=32, d_sae=24, hook_name="blocks.1.hook_resid_post", k=4))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in s.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return s


@pytest.fixture(scope="module")
def corpus() -> torch.Tensor:
    return torch.randint(0, 96, (30, 10), generator=torch.Generator().manual_seed(3))


def all_acts(model, sae, corpus) -> torch.Tensor:
    _, cache = model.run_with_cache(corpus, names_filter=sae.cfg.hook_name)
    with torch.no_grad():
        return sae.encode(cache[sae.cfg.hook_name])  # [prompt, pos, latent]


def test_top_contexts_equal_brute_force(model, sae, corpus) -> None:
    acts = all_acts(model, sae, corpus)
    df = top_contexts(model, sae, corpus, n=5, batch_prompts=7, progress=False)
    for latent in range(sae.cfg.d_sae):
        flat = acts[..., latent].flatten()
        want = flat.topk(5).values
        got = df[df.latent == latent].sort_values("rank")
        want = want[want > 0]
        assert got.activation.tolist() == pytest.approx(want.tolist(), abs=1e-6)
        for row in got.itertuples():
            assert float(acts[row.prompt, row.pos, latent]) == pytest.approx(row.activation, abs=1e-6)


def test_stats_and_histogram(model, sae, corpus) -> None:
    acts = all_acts(model, sae, corpus).flatten(0, 1)
    stats = activation_stats(model, sae, corpus, batch_prompts=8, progress=False)
    assert stats.frequency.tolist() == pytest.approx((acts > 0).float().mean(0).tolist())
    assert stats["max"].tolist() == pytest.approx(acts.amax(0).tolist(), abs=1e-6)
    hist = activation_histogram(model, sae, corpus, bins=10, progress=False)
    counts = hist.groupby("latent")["count"].sum()
    assert counts.tolist() == (acts > 0).sum(0).tolist()  # every firing lands in one bin


def test_vocab_projection(model, sae) -> None:
    df = vocab_projection(model, sae, k=3)
    logits = sae.W_dec.detach() @ model.W_U
    top = df[(df.latent == 5) & (df.side == "top")].sort_values("rank")
    assert top.logit.tolist() == pytest.approx(logits[5].topk(3).values.tolist(), abs=1e-5)
    bottom = df[(df.latent == 5) & (df.side == "bottom")].sort_values("rank")
    assert bottom.logit.tolist() == pytest.approx((-logits[5]).topk(3).values.neg().tolist(), abs=1e-5)
    z = SAE(
        SAEConfig(
            "standard", d_in=32, d_sae=8, hook_name="blocks.0.attn.hook_z", reshape_activations="hook_z"
        )
    )
    with pytest.raises(ValueError, match="not in the residual basis"):
        vocab_projection(model, z)


def test_prompt_latent_attribution_is_the_gradient(model, sae, corpus) -> None:
    tokens = corpus[0]
    target = 7

    def metric(logits):
        return logits[0, -1, target]

    df = prompt_latents(model, sae, tokens, metric=metric, k=4)
    assert set(df.pos) == set(range(10))
    row = df[df.pos == 9].iloc[0]  # the most active latent at the last position
    eps = 1e-3
    name = f"{sae.cfg.hook_name}.hook_sae_acts_post"

    def bump(a, hook):
        a[0, 9, int(row.latent)] += eps
        return a

    with torch.no_grad(), model.saes([sae], use_error_term=True):
        base = metric(model(tokens))
        with model.hooks([(name, bump)]):
            moved = metric(model(tokens))
    grad = float((moved - base) / eps)
    assert row.attribution == pytest.approx(row.activation * grad, rel=1e-2, abs=1e-4)
    assert all(p.grad is None and not p.requires_grad for p in sae.parameters())


def test_top_latents_is_the_three_tables_of_a_features_view(model, sae, corpus) -> None:
    """The prompt's latents, then the top contexts and vocabulary rows of exactly those latents."""
    view = top_latents(model, sae, corpus[1], corpus, k=3, n_contexts=2, n_tokens=4)
    want = prompt_latents(model, sae, corpus[1], k=3)
    assert view["latents"].equals(want)
    chosen = sorted(set(want.latent))
    assert sorted(set(view["contexts"].latent)) == chosen and sorted(set(view["vocab"].latent)) == chosen
    ref = top_contexts(model, sae, corpus, n=2, latents=chosen, progress=False)
    assert view["contexts"].equals(ref)
    assert view["vocab"].equals(vocab_projection(model, sae, k=4, latents=chosen))
    # each listed latent's best context is its largest activation anywhere in the corpus
    acts = all_acts(model, sae, corpus)
    for latent in chosen:
        best = view["contexts"][view["contexts"].latent == latent].activation.max()
        assert best == pytest.approx(float(acts[..., latent].max()), rel=1e-5)
    assert top_latents(model, sae, corpus[1])["contexts"].empty
