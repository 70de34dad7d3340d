"""TransformerLens's own tools run on an interp model: `patching.get_act_patch_*` and `test_prompt`."""

from __future__ import annotations

import re

import torch
from compat_helpers import gpt2, llama, tl_test_prompt
from transformer_lens import patching

from interp.analysis import MLP, Head, Resid, denoise, logit_diff

CLEAN = "When John and Mary went to the store, John gave a bag to"
CORRUPT = "When John and Mary went to the store, Mary gave a bag to"


def _tokens(model):
    return model.to_tokens(CLEAN), model.to_tokens(CORRUPT)


def test_tl_activation_patching_on_interp_equals_interps_own():
    for model in (gpt2(), llama()):
        clean, corrupted = _tokens(model)
        _, clean_cache = model.run_with_cache(clean)
        metric = logit_diff([model.to_single_token(" Mary")], [model.to_single_token(" John")])
        n, h, n_pos = model.cfg.n_layers, model.cfg.n_heads, clean.shape[1]

        def tl_metric(logits, metric=metric):  # TL's convention: the metric gets [batch, pos, d_vocab]
            return metric(logits[:, -1])

        cases = [
            (patching.get_act_patch_resid_pre, Resid.every(model, n_pos), (n, n_pos)),
            (patching.get_act_patch_attn_head_out_all_pos, Head.every(model), (n, h)),
            (patching.get_act_patch_mlp_out, MLP.every(model, n_pos), (n, n_pos)),
        ]
        for tl_fn, sites, shape in cases:
            expected = torch.as_tensor(tl_fn(model, corrupted, clean_cache, tl_metric))
            got = denoise(model, clean, corrupted, sites, metric)["metric"].to_numpy()
            got = torch.tensor(got, dtype=torch.float32).view(shape)
            assert (got - expected.float()).abs().max() < 1e-4, (tl_fn.__name__, type(model))
        # Sanity: patching the whole residual at layer 0 restores the clean answer, so the sweep is not flat.
        assert expected.abs().max() > 0


def test_test_prompt_on_interp_prints_interps_numbers(capsys):
    model = gpt2()
    tl_test_prompt(CLEAN, " Mary", model, prepend_space_to_answer=False, top_k=3)
    out = capsys.readouterr().out
    logits = model(model.to_tokens(CLEAN + " Mary"))[0, -2]
    probs = logits.softmax(-1)
    top = logits.topk(3)
    shown = re.findall(r"Top 0th token\. Logit: +([-\d.]+) Prob: +([\d.]+)% Token: \|(.*)\|", out)
    assert shown, out
    logit, prob, token = shown[0]
    assert abs(float(logit) - top.values[0].item()) < 0.01
    assert abs(float(prob) - 100 * probs[top.indices[0]].item()) < 0.01
    assert token == model.to_string(top.indices[0])
    rank = int((logits > logits[model.to_single_token(" Mary")]).sum())
    assert re.search(rf"Rank: {rank}\b", out)
