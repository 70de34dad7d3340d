"""The trainer recovers a known sparse dictionary, is bit-reproducible, and reports honest figures."""

from __future__ import annotations

import pytest
import torch
from conftest import make_hf

import interp
from interp.analysis.specs import MLP, MLPIn, Resid
from interp.sae import InMemoryStore, train


def synthetic_store(n: int = 6000, d: int = 24, n_features: int = 32, active: int = 3, seed: int = 0):
    """Activations that ARE a sparse code over known unit directions, so recovery can be measured."""
    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_features, d, generator=gen)
    dirs /= dirs.norm(dim=-1, keepdim=True)
    idx = torch.stack([torch.randperm(n_features, generator=gen)[:active] for _ in range(n)])
    coef = torch.zeros(n, n_features).scatter(1, idx, 1 + torch.rand(n, active, generator=gen))
    return InMemoryStore(coef @ dirs), dirs


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load(make_hf("gpt2"))


def prompts(n: int = 40) -> torch.Tensor:
    """Token rows: the tiny random model has no tokenizer."""
    return torch.randint(0, 96, (n, 12), generator=torch.Generator().manual_seed(0))


def test_topk_recovers_the_true_features(model) -> None:
    store, dirs = synthetic_store()
    sae, report = train(None, Resid(0), [], d_sae=48, k=3, steps=1500, lr=3e-3, store=store, progress=False)
    cos = (sae.W_dec / sae.W_dec.norm(dim=-1, keepdim=True)) @ dirs.T  # [d_sae, n_features]
    recovered = (cos.max(0).values > 0.9).float().mean()
    assert recovered > 0.9, f"only {recovered:.0%} of the true directions have a latent with cos > 0.9"
    assert report.explained_variance > 0.9 and report.l0 == pytest.approx(3.0)
    assert report.ce_clean != report.ce_clean  # NaN: no prompts to measure a loss on, and it says so


def test_training_is_bit_reproducible() -> None:
    store, _ = synthetic_store(n=2000)
    a, _ = train(None, Resid(0), [], d_sae=40, k=4, steps=60, store=store, progress=False, seed=7)
    b, _ = train(None, Resid(0), [], d_sae=40, k=4, steps=60, store=store, progress=False, seed=7)
    c, _ = train(None, Resid(0), [], d_sae=40, k=4, steps=60, store=store, progress=False, seed=8)
    for name, p in a.state_dict().items():
        assert torch.equal(p, b.state_dict()[name]), name
    assert not torch.equal(a.W_dec, c.W_dec)


def test_on_a_model_the_report_measures_the_splice(model) -> None:
    tokens = prompts()
    from interp.sae.store import collect_activations

    store = collect_activations(model, "blocks.1.hook_resid_post", tokens, progress=False)
    assert len(store) == 40 * 11  # every real token but position 0
    sae, report = train(model, Resid(1, stage="post"), tokens, d_sae=64, k=8, steps=200, store=store, progress=False)  # fmt: skip
    with torch.no_grad():
        clean = float(model.loss(tokens))
        with model.saes([sae]):
            spliced = float(model.loss(tokens))
    assert report.ce_clean == pytest.approx(clean, rel=1e-5) and report.ce_spliced == pytest.approx(
        spliced, rel=1e-5
    )
    assert report.ce_spliced != pytest.approx(report.ce_clean)
    tc, _ = train(model, MLPIn(0), tokens, d_sae=64, l1=1e-3, target=MLP(0), steps=50, progress=False)
    assert tc.cfg.architecture == "transcoder" and tc.cfg.write_hook == "blocks.0.hook_mlp_out"


def test_bad_arguments() -> None:
    store, _ = synthetic_store(n=600)
    with pytest.raises(ValueError, match="exactly one of k="):
        train(None, Resid(0), [], d_sae=8, store=store)
    with pytest.raises(TypeError, match="typed site spec"):
        train(None, "blocks.0.hook_resid_pre", [], d_sae=8, k=2, store=store)
    with pytest.raises(ValueError, match="no TopK transcoder"):
        train(None, MLPIn(0), [], d_sae=8, k=2, target=MLP(0), store=store)
