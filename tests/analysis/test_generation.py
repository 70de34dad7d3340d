"""Generation against a hand-written argmax loop (also under ablation); steering against a manual hook."""

from __future__ import annotations

import copy

import pytest
import torch
from analysis_helpers import gpt2_like, token_pair

from interp.analysis import MLP, ablate, generate, steer, steering_vector


def greedy_loop(model, tokens, n):
    for _ in range(n):
        with torch.no_grad():
            nxt = model(tokens)[:, -1].argmax(-1)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
    return tokens


def test_greedy_matches_argmax_loop_and_runs_under_ablation():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=4)
    assert torch.equal(generate(model, tokens, 5), greedy_loop(model, tokens, 5))
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        zeroed.blocks[1].mlp.W_out.zero_()
        zeroed.blocks[1].mlp.b_out.zero_()
    with ablate(model, MLP(1)):
        ablated = generate(model, tokens, 5)
    assert torch.equal(ablated, greedy_loop(zeroed, tokens, 5))
    assert model.hook_count() == 0


def test_sampling_is_seeded_and_text_round_trips():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=4)
    a = generate(model, tokens, 6, temperature=1.5, seed=3)
    assert torch.equal(a, generate(model, tokens, 6, temperature=1.5, seed=3))
    assert not torch.equal(a, generate(model, tokens, 6, temperature=1.5, seed=4))
    top1 = generate(model, tokens, 6, temperature=1.0, top_k=1, seed=0)
    assert torch.equal(top1, generate(model, tokens, 6))  # top-1 sampling is greedy
    text = generate(model, "The capital of France is", 3)
    assert isinstance(text, str) and text.startswith("<bos>The capital of France is")
    many = generate(model, ["The capital of France is", "The city"], 2)
    assert len(many) == 2 and many[1].startswith("<bos>The city")
    # left padding: the short prompt continues exactly as it would alone
    assert many[1] == generate(model, "The city", 2)


def test_steering_vector_and_scoped_addition():
    model = gpt2_like()
    pos_tokens, neg_tokens = token_pair(model, batch=3, n_pos=5)
    vec = steering_vector(model, pos_tokens, neg_tokens, layer=1)
    _, pos_cache = model.run_with_cache(pos_tokens)
    _, neg_cache = model.run_with_cache(neg_tokens)
    expected = pos_cache["resid_pre", 1][:, -1].mean(0) - neg_cache["resid_pre", 1][:, -1].mean(0)
    torch.testing.assert_close(vec, expected)
    every = steering_vector(model, pos_tokens, neg_tokens, layer=1, read_pos="all")
    torch.testing.assert_close(every, (pos_cache["resid_pre", 1] - neg_cache["resid_pre", 1]).mean((0, 1)))

    def manual(act, hook):
        act = act.clone()
        act[:, [0, 2]] += 4.0 * vec
        return act

    tokens = pos_tokens[:1]
    with steer(model, vec, layer=1, coeff=4.0, pos=[0, 2]), torch.no_grad():
        got = model(tokens)
    torch.testing.assert_close(
        got, model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_pre", manual)])
    )
    assert model.hook_count() == 0
    with steer(model, vec, layer=1, coeff=50.0, pos=[0, 9]):  # position 9 is skipped until it exists
        steered = generate(model, tokens, 4)
    assert not torch.equal(steered, generate(model, tokens, 4))
    with pytest.raises(ValueError, match="steering vector must have shape"):
        with steer(model, vec[:3], layer=1):
            pass
    with pytest.raises(ValueError, match="layer 5 out of range"):
        steering_vector(model, pos_tokens, neg_tokens, layer=5)


def test_generation_under_mean_ablation_extends_the_reference_mean():
    """Past the reference's length, per-position mean ablation uses the mean over all its real positions."""
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=1, n_pos=4)
    reference, _ = token_pair(model, batch=3, n_pos=4, seed=5)
    site = MLP(1)
    with torch.no_grad():
        acts = model.run_with_cache(reference, names_filter=site.hook_name)[1][site.hook_name]
    per_pos, overall = acts.mean(0), acts.mean((0, 1))

    def hook(act, hook):
        n = act.shape[1]
        fill = torch.cat([per_pos, overall.expand(max(n - 4, 0), -1)])[:n]
        return fill.expand_as(act).clone()

    expected = tokens
    for _ in range(4):
        with torch.no_grad():
            nxt = model.run_with_hooks(expected, fwd_hooks=[(site.hook_name, hook)])[:, -1].argmax(-1)
        expected = torch.cat([expected, nxt[:, None]], dim=1)
    with ablate(model, site, method="mean", reference=reference):
        got = generate(model, tokens, 4)
    assert torch.equal(got, expected)
