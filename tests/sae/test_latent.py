"""Latent(sae, index) as a site: ablation equals subtracting act_i · W_dec[i] at the host hook, patching
and attribution run through the engine like any site."""

from __future__ import annotations

import pytest
import torch
from conftest import make_hf

import interp
from interp.analysis import ablate, ablation_sweep, attribution_patch, denoise, logit_diff
from interp.sae import SAE, Latent, SAEConfig


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load(make_hf("gpt2"))


@pytest.fixture(scope="module")
def sae() -> SAE:
    s = SAE(SAEConfig("standard", d_in=32, d_sae=16, hook_name="blocks.1.hook_resid_mid"))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in s.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    return s


def tokens(seed: int) -> torch.Tensor:
    return torch.randint(0, 96, (2, 8), generator=torch.Generator().manual_seed(seed))


def hand_ablated(model, sae, toks, index, pos=None):
    """The host activation minus act_i · W_dec[i] (at `pos`, or everywhere), by a hook written here."""

    def edit(x, hook):
        acts = sae.encode(x)[..., index]
        delta = acts[..., None] * sae.W_dec[index]
        if pos is not None:
            keep = torch.zeros_like(delta)
            keep[:, pos] = delta[:, pos]
            delta = keep
        return x - delta

    with torch.no_grad():
        return model.run_with_hooks(toks, fwd_hooks=[(sae.cfg.hook_name, edit)])


def test_ablating_a_latent_subtracts_its_decoder_row(model, sae) -> None:
    toks = tokens(1)
    clean = model(toks)
    _, cache = model.run_with_cache_with_saes(toks, saes=[sae])
    i = int(cache[f"{sae.cfg.hook_name}.hook_sae_acts_post"][0, -1].argmax())
    with torch.no_grad(), ablate(model, [Latent(sae, i)]):
        got = model(toks)
    assert torch.allclose(got, hand_ablated(model, sae, toks, i), atol=1e-5)
    assert not torch.allclose(got, clean, atol=1e-4)
    with torch.no_grad(), ablate(model, [Latent(sae, i, pos=5)]):
        at5 = model(toks)
    assert torch.allclose(at5, hand_ablated(model, sae, toks, i, pos=5), atol=1e-5)
    assert model.hook_count() == 0 and f"{sae.cfg.hook_name}.hook_sae_acts_post" not in model.hook_names()


def test_latent_sweeps_and_patching(model, sae) -> None:
    toks = tokens(2)
    metric = logit_diff(3, 4)
    df = ablation_sweep(model, toks, Latent.every(sae), metric)
    assert list(df.latent) == list(range(16)) and set(df.site) == {"latent"}
    for i in (0, 7):
        want = float(metric(hand_ablated(model, sae, toks, i)[:, -1]).mean())
        assert df.metric[i] == pytest.approx(want, abs=1e-4)
    clean, corrupted = tokens(3), tokens(4)
    d = denoise(model, clean, corrupted, [Latent(sae, j, pos=6) for j in range(4)], metric)
    for j in range(4):
        _, c = model.run_with_cache_with_saes(clean, saes=[sae])
        source = c[f"{sae.cfg.hook_name}.hook_sae_acts_post"][:, 6, j]

        def patch(x, hook, j=j, source=source):
            acts = sae.encode(x)[:, 6, j]
            x = x.clone()
            x[:, 6] += (source - acts)[:, None] * sae.W_dec[j]
            return x

        with torch.no_grad():
            want = float(
                metric(model.run_with_hooks(corrupted, fwd_hooks=[(sae.cfg.hook_name, patch)])[:, -1]).mean()
            )
        assert d.metric[j] == pytest.approx(want, abs=1e-4)
    a = attribution_patch(model, clean, corrupted, [Latent(sae, j, pos=6) for j in range(4)], metric)
    assert a["effect"].notna().all() and len(a) == 4


def test_latent_errors(model, sae) -> None:
    with pytest.raises(ValueError, match="latent 99 out of range"):
        ablation_sweep(model, tokens(1), [Latent(sae, 99)], logit_diff(3, 4))
    with pytest.raises(TypeError, match="needs an interp.sae.SAE"):
        Latent("not an sae", 0)
    assert Latent(sae, 3) == Latent(sae, 3) and hash(Latent(sae, 3)) == hash(Latent(sae, 3))
    other = SAE(sae.cfg)
    assert Latent(other, 3) != Latent(sae, 3)


def test_ablating_a_transcoder_latent_subtracts_its_row_from_the_mlp_out(model) -> None:
    """A transcoder latent lives under the hook it writes (SAELens's name); zeroing it moves mlp_out by
    −act_i · W_dec[i], computed here from the MLP's input by hand."""
    tc = SAE(SAEConfig("transcoder", d_in=32, d_sae=16, hook_name="blocks.1.ln2.hook_normalized",
                       hook_name_out="blocks.1.hook_mlp_out", apply_b_dec_to_input=False))  # fmt: skip
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in tc.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    toks = tokens(5)
    latent = Latent(tc, 3)
    assert latent.hook_name == "blocks.1.hook_mlp_out.hook_sae_acts_post"
    seen = {}

    def read(x, hook):
        seen["acts"] = tc.encode(x)[..., 3]

    def write(out, hook):
        return out - seen["acts"][..., None] * tc.W_dec[3]

    with torch.no_grad():
        want = model.run_with_hooks(
            toks, fwd_hooks=[("blocks.1.ln2.hook_normalized", read), ("blocks.1.hook_mlp_out", write)]
        )
        with ablate(model, [latent]):
            got = model(toks)
    assert (seen["acts"] > 0).any(), "latent 3 never fires: the test would be vacuous"
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, model(toks), atol=1e-4)
