"""The dictionaries shipped with tiny-facts: they load by name, measure what their card says on held-out
documents (measured here, not read back), splice exactly with the error term, and fit the size budget."""

from __future__ import annotations

import json

import pytest
import torch

import interp
import interp.sae
from interp.embedded import saes_dir
from interp.embedded.tiny_facts.corpus import training_documents
from interp.errors import LoadError
from interp.sae.store import collect_activations

if not (saes_dir("tiny-facts") / "card.json").exists():  # NOT DONE until the folders are committed
    pytest.skip(
        "tiny-facts ships no dictionaries yet: run experiments/train_saes.py", allow_module_level=True
    )
CARD = json.loads((saes_dir("tiny-facts") / "card.json").read_text())
NAMES = sorted(CARD["saes"])


@pytest.fixture(scope="module")
def model() -> interp.HookedTransformer:
    return interp.load("tiny-facts")


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return training_documents(120, seed=CARD["seed"] + 2)  # the card's held-out stream (its first 120 docs)


def test_one_residual_sae_and_one_transcoder_at_the_fact_layer() -> None:
    layer = CARD["fact_layer"]
    effects = CARD["mlp_indirect_effect_by_layer"]
    assert layer == max(range(len(effects)), key=effects.__getitem__) == 0  # MLP 0 stores the facts
    assert NAMES == [f"resid-{layer}", f"transcoder-{layer}"]
    assert [n for n in interp.sae.shipped() if n.startswith("tiny-facts/")] == [
        f"tiny-facts/{n}" for n in NAMES
    ]
    total = sum(f.stat().st_size for f in saes_dir("tiny-facts").rglob("*") if f.is_file())
    assert total <= 10e6, f"shipped dictionaries take {total / 1e6:.1f} MB (budget 10 MB)"


@pytest.mark.parametrize("name", NAMES)
def test_measured_figures_match_the_card(model, docs, name) -> None:
    sae = interp.sae.load(f"tiny-facts/{name}")
    card = CARD["saes"][name]
    assert sae.W_enc.dtype == torch.float32 and sae.cfg.model_name == "tiny-facts"
    assert torch.equal(sae.W_dec, sae.W_dec.half().float())  # stored as float16, computed in float32
    store = collect_activations(
        model, sae.cfg.hook_name, docs, target_hook=sae.cfg.hook_name_out, progress=False
    )
    with torch.no_grad():
        acts = sae.encode(store.x)
        recon = sae.decode(acts)
    ev = 1 - float((store.y - recon).pow(2).sum() / (store.y - store.y.mean(0)).pow(2).sum())
    l0 = float((acts > 0).float().sum(-1).mean())
    assert ev == pytest.approx(card["explained_variance"], abs=0.03), (ev, card["explained_variance"])
    assert l0 == pytest.approx(card["l0"], abs=max(1.0, 0.15 * card["l0"])), (l0, card["l0"])
    assert ev > 0.9 and l0 < 128  # a dictionary that reconstructs, sparsely (of 1024 latents)


@pytest.mark.parametrize("name", NAMES)
def test_splice_with_error_term_leaves_logits_exact(model, docs, name) -> None:
    sae = interp.sae.load(f"tiny-facts/{name}")
    tokens, mask = model.to_tokens(docs[:40], return_attention_mask=True)
    with torch.no_grad():
        clean = model(tokens, attention_mask=mask)
        with model.saes([sae], use_error_term=True):
            exact = model(tokens, attention_mask=mask)
        with model.saes([sae]):
            spliced = model(tokens, attention_mask=mask)
    real = mask.bool()
    assert (exact - clean)[real].abs().max() < 1e-4
    assert (spliced - clean)[real].abs().max() > 1e-2  # without the error term the reconstruction shows


def test_unknown_shipped_name_is_a_clear_error() -> None:
    with pytest.raises(LoadError, match="ships no dictionary 'resid-9'; shipped: tiny-facts/"):
        interp.sae.load("tiny-facts/resid-9")
