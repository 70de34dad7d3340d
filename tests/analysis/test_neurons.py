"""Neurons: integrated gradients against a hand-written path integral and IG's completeness; edits
against hand-scaled W_out rows; vocabulary projections against W_out @ W_U."""

from __future__ import annotations

import copy

import pytest
import torch
from analysis_helpers import build, gpt2_like, token_pair

from interp.analysis import Head, Neuron, knowledge_neurons, neuron_effects, neuron_vocab, top_neurons


def prob_with_layer_scaled(model, tokens, layer, alpha, target):
    """P(target) at the last position, hook_post of `layer` at the last position replaced by alpha * a."""
    # Cache only hook_post: caching patterns would switch attention to its explicit path, whose softmax
    # runs in float32 even in a float64 model.
    _, cache = model.run_with_cache(tokens, names_filter=f"blocks.{layer}.mlp.hook_post")
    w = cache["post", layer][:, -1]
    scaled = (alpha * w).requires_grad_()

    def put(act, hook):
        act = act.clone()
        act[:, -1] = scaled
        return act

    logits = model.run_with_hooks(tokens, fwd_hooks=[(f"blocks.{layer}.mlp.hook_post", put)])
    p = logits[:, -1].softmax(-1)[torch.arange(tokens.shape[0]), target]
    return p, scaled, w


def test_integrated_gradients_match_a_hand_written_path_integral():
    model = build(4, dtype=torch.float64)
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    target = torch.tensor([3, 8])
    df = knowledge_neurons(model, tokens, target, layers=[1], steps=3)
    grads = []
    for k in (1, 2, 3):
        p, scaled, w = prob_with_layer_scaled(model, tokens, 1, k / 3, target)
        grads.append(torch.autograd.grad(p.sum(), scaled)[0])
    expected = (w * torch.stack(grads).mean(0)).mean(0)  # [d_mlp], mean over the two prompts
    got = df.sort_values("neuron")["attribution"].to_numpy()
    torch.testing.assert_close(torch.tensor(got), expected.detach(), atol=1e-10, rtol=1e-8)
    assert df["attribution"].is_monotonic_decreasing


def test_integrated_gradients_are_complete():
    """With many steps, a layer's attributions sum to P(actual activations) - P(activations zeroed)."""
    model = build(5, dtype=torch.float64)
    tokens, _ = token_pair(model, batch=1, n_pos=5)
    df = knowledge_neurons(model, tokens, 6, layers=[2], steps=400)
    with torch.no_grad():
        full = prob_with_layer_scaled(model, tokens, 2, 1.0, 6)[0].item()
        zero = prob_with_layer_scaled(model, tokens, 2, 0.0, 6)[0].item()
    assert df["attribution"].sum() == pytest.approx(full - zero, rel=0.02, abs=1e-6)


def test_top_neurons_and_vocab_projection():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    _, cache = model.run_with_cache(tokens)
    acts = torch.stack([cache["post", layer][:, -1].mean(0) for layer in range(3)])
    df = top_neurons(model, tokens, k=4)
    top = acts.flatten().topk(4)
    assert list(zip(df.layer, df.neuron, strict=True)) == [
        divmod(i, model.cfg.d_mlp) for i in top.indices.tolist()
    ]
    vocab = neuron_vocab(model, 1, 7, k=3)
    proj = model.blocks[1].mlp.W_out[7] @ model.W_U
    assert vocab[vocab.direction == "top"]["token_id"].tolist() == proj.topk(3).indices.tolist()
    assert vocab[vocab.direction == "bottom"]["token_id"].tolist() == (-proj).topk(3).indices.tolist()
    assert "token" in vocab.columns
    with pytest.raises(ValueError, match="neuron index 48 out of range"):
        neuron_vocab(model, 1, 48)


def test_suppress_and_amplify_match_scaled_weights():
    """Scaling a neuron's activation at every position is scaling its W_out row."""
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    cells = [Neuron(0, 3), [Neuron(1, 0), Neuron(1, 5)]]
    df = neuron_effects(model, tokens, cells, answer=[4, 9], max_rows=4)
    assert len(df) == 4 and df["factor"].tolist() == [0.0, 2.0] * 2
    p_base = model(tokens)[:, -1].softmax(-1)[[0, 1], [4, 9]]
    assert df["p_base"].iloc[0] == pytest.approx(p_base.mean().item(), abs=1e-6)
    expected = []
    for layer, rows in ((0, [3]), (1, [0, 5])):
        for factor in (0.0, 2.0):
            edited = copy.deepcopy(model)
            with torch.no_grad():
                edited.blocks[layer].mlp.W_out[rows] *= factor
                expected.append(edited(tokens)[:, -1].softmax(-1)[[0, 1], [4, 9]])
    for row, p_new in zip(df.itertuples(), expected, strict=True):
        assert row.p_new == pytest.approx(p_new.mean().item(), abs=1e-6)
        assert row.relative_change == pytest.approx((p_new / p_base - 1).mean().item(), abs=1e-5)


def test_edits_at_one_position_and_errors():
    model = gpt2_like()
    tokens, _ = token_pair(model, batch=2, n_pos=5)
    df = neuron_effects(model, tokens, [Neuron(2, 11, pos=-1)], factors=[3.0])

    def hook(act, hook):
        act = act.clone()
        act[:, -1, 11] *= 3.0
        return act

    logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.2.mlp.hook_post", hook)])
    answer = model(tokens)[:, -1].argmax(-1)  # the default target: the unedited top prediction
    p_new = logits[:, -1].softmax(-1)[[0, 1], answer]
    assert df["p_new"].item() == pytest.approx(p_new.mean().item(), abs=1e-6)
    with pytest.raises(TypeError, match="takes Neuron specs"):
        neuron_effects(model, tokens, [Head(0, 1)])
    with pytest.raises(ValueError, match="neuron index 99 out of range"):
        neuron_effects(model, tokens, [Neuron(0, 99)])
