"""generate_ablated: zero ablation is `ablate` around `generate`; mean and resample follow the continuation
in the references, checked against a hand-written decoding loop."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like

from interp.analysis import MLP, Head, ablate, generate
from interp.analysis.generation import generate_ablated

PROMPT = "The capital of France is"
REFERENCE = ["The capital of Italy is", "I love the city of", "The Eiffel Tower is in"]


def test_zero_is_ablate_around_generate():
    model = gpt2_like()
    sites = [Head(0, 1), MLP(2, pos=(1, 2))]
    with ablate(model, sites):
        expected = generate(model, PROMPT, 6)
    assert generate_ablated(model, PROMPT, sites, 6) == expected
    assert expected != generate(model, PROMPT, 6)  # the ablation changes the continuation


@torch.no_grad()
def test_mean_follows_the_continuation_in_the_references():
    model = gpt2_like()
    site = MLP(1)
    tokens, ref = model.to_tokens(PROMPT), model.to_tokens(REFERENCE)
    for _ in range(5):  # by hand: the references extended by the new tokens, their mean per position
        extended = torch.cat([ref, tokens[:, ref.shape[1] :].expand(len(REFERENCE), -1)], dim=1)
        mean = model.run_with_cache(extended)[1][site.hook_name].mean(0, keepdim=True)
        hook = (site.hook_name, lambda act, hook, mean=mean: mean.expand_as(act).clone())
        logits = model.run_with_hooks(tokens, fwd_hooks=[hook])
        tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    got = generate_ablated(model, PROMPT, [site], 5, "mean", REFERENCE)
    assert got == model.to_string(tokens[0])
    with ablate(model, [site], "mean", REFERENCE):  # plain ablate: a constant mean at the new positions
        plain = generate(model, PROMPT, 5)
    assert got != plain


def test_resample_runs_past_the_reference_length_and_bad_references_are_clear():
    model = gpt2_like()
    out = generate_ablated(model, PROMPT, [Head(1, 0)], 4, "resample", REFERENCE)
    assert out.startswith(model.to_string(model.to_tokens(PROMPT)[0])) and len(model.to_str_tokens(out)) >= 8
    with pytest.raises(ValueError, match="needs reference prompts"):
        generate_ablated(model, PROMPT, [Head(1, 0)], 4, "mean")
    with pytest.raises(ValueError, match="prompt's 6 tokens"):
        generate_ablated(model, PROMPT, [Head(1, 0)], 4, "mean", ["I love you"])
