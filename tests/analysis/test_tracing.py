"""Causal tracing against a hand-written loop of noised, restored forwards."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like

from interp.analysis import MLP, Attn, ResidPost, causal_trace, subject_span

PROMPT = "The Eiffel Tower is in the city of"


def hand_trace(model, tokens, span, noise, target, hook_of, window_layers):
    """P*_restored(target) for every (layer, pos), one forward per cell, hooks written out."""
    start, end = span
    n_samples = noise.shape[0]
    batch = tokens.repeat(n_samples, 1)
    _, clean = model.run_with_cache(tokens)

    def add_noise(x, hook):
        x = x.clone()
        x[:, start:end] += noise
        return x

    def p_target(extra):
        with torch.no_grad():
            logits = model.run_with_hooks(batch, fwd_hooks=[("hook_embed", add_noise), *extra])
        return logits[:, -1].softmax(-1)[:, target].mean().item()

    out = {}
    for layer in range(model.cfg.n_layers):
        for pos in range(tokens.shape[1]):

            def restore(x, hook, pos=pos):
                x = x.clone()
                x[:, pos] = clean[hook.name][:, pos]
                return x

            out[layer, pos] = p_target([(hook_of(w), restore) for w in window_layers(layer)])
    return out, p_target([])


@pytest.mark.parametrize(
    ("site", "window", "hook_of"),
    [
        (ResidPost, 1, lambda w: f"blocks.{w}.hook_resid_post"),
        (MLP, 3, lambda w: f"blocks.{w}.hook_mlp_out"),
        (Attn, 1, lambda w: f"blocks.{w}.hook_attn_out"),
        (ResidPost, 2, lambda w: f"blocks.{w}.hook_resid_post"),  # even windows: one more layer below
        (MLP, 4, lambda w: f"blocks.{w}.hook_mlp_out"),
        (Attn, 2, lambda w: f"blocks.{w}.hook_attn_out"),
    ],
)
def test_matches_hand_written_loop(site, window, hook_of):
    model = gpt2_like()
    tokens = model.to_tokens(PROMPT)
    span = subject_span(model, tokens, " Eiffel Tower")
    noise = torch.randn(4, span[1] - span[0], model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    df = causal_trace(
        model, PROMPT, " Eiffel Tower", site=site, window=window, n_samples=4, noise=noise, max_rows=12
    )
    target = df.attrs["target"]
    assert target == int(model(tokens)[0, -1].argmax())

    def window_layers(layer):  # [l - w//2, l - w//2 + w): window 2 around l is l-1..l, window 4 is l-2..l+1
        return range(max(0, layer - window // 2), min(model.cfg.n_layers, layer - window // 2 + window))

    expected, p_corr = hand_trace(model, tokens, span, noise, target, hook_of, window_layers)
    for row in df.itertuples():
        assert row.p_restored == pytest.approx(expected[row.layer, row.pos], abs=1e-6)
    p_clean = model(tokens)[0, -1].softmax(-1)[target].item()
    assert df.attrs["p_clean"] == pytest.approx(p_clean, abs=1e-6)
    assert df.attrs["p_corrupted"] == pytest.approx(p_corr, abs=1e-6)
    assert df.attrs["total_effect"] == pytest.approx(p_clean - p_corr, abs=1e-6)
    assert df["indirect_effect"].tolist() == pytest.approx((df["p_restored"] - p_corr).tolist(), abs=1e-6)
    assert df.loc[df["subject"], "pos"].tolist() == [2, 3] * model.cfg.n_layers
    if site is ResidPost:  # restoring the whole last-layer state at the last position is the clean run
        last = df[(df.layer == model.cfg.n_layers - 1) & (df.pos == tokens.shape[1] - 1)]
        assert last["p_restored"].item() == pytest.approx(p_clean, abs=1e-6)


def test_subject_span_and_seeded_noise():
    model = gpt2_like()
    tokens = model.to_tokens(PROMPT)  # <bos> The Eiffel Tower is in the city of
    assert subject_span(model, tokens, " Eiffel Tower") == (2, 4)
    assert subject_span(model, tokens, "Tower") == (3, 4)
    assert subject_span(model, tokens, "ffel To") == (2, 4)
    assert subject_span(model, tokens, (1, 3)) == (1, 3)
    a = causal_trace(model, tokens, (2, 4), answer=9, n_samples=3, seed=1)
    b = causal_trace(model, tokens, (2, 4), answer=9, n_samples=3, seed=1)
    assert a["p_restored"].tolist() == b["p_restored"].tolist() and a.attrs["target"] == 9
    assert len(a) == model.cfg.n_layers * tokens.shape[1]
    assert set(a.columns) >= {"kind", "layer", "pos", "token", "subject", "p_restored", "indirect_effect"}


def test_errors():
    model = gpt2_like()
    with pytest.raises(ValueError, match="subject ' Colosseum' not found in the prompt"):
        causal_trace(model, PROMPT, " Colosseum")
    with pytest.raises(ValueError, match="subject span"):
        causal_trace(model, PROMPT, (5, 40))
    with pytest.raises(ValueError, match="one prompt"):
        causal_trace(model, [PROMPT, PROMPT], (1, 2))
    with pytest.raises(ValueError, match="kind must be"):
        causal_trace(model, PROMPT, (1, 2), kind="mlp_out")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="noise must have shape"):
        causal_trace(model, PROMPT, (1, 2), n_samples=2, noise=torch.zeros(3, 1, model.cfg.d_model))


def test_subject_span_uses_offsets_when_bytes_split_a_character():
    # tiny-facts' English-only BPE splits each Chinese character into byte tokens that decode to "�";
    # matching decoded pieces would misplace the subject, the tokenizer's offsets do not.
    import interp

    model = interp.load("tiny-facts")
    prompt = "说到法国，它的首都是"
    tokens = model.to_tokens(prompt)
    start, end = subject_span(model, tokens, "法国")
    assert "�" in "".join(model.to_str_tokens(tokens[0, start:end]))  # really split mid-character
    assert model.to_string(tokens[0, start:end]) == "法国"
    assert model.to_string(tokens[0, 1:start]) == "说到"
    later = subject_span(model, tokens, "首都")
    assert model.to_string(tokens[0, later[0] : later[1]]) == "首都"
