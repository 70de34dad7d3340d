"""ModelConfig: frozen, validated, JSON round-trips, and configs saved before the family variants still load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interp.config import ModelConfig, NormLayout, RopeScaling, SoftCaps
from interp.params import PRESETS

EMBEDDED = Path(__file__).parents[1] / "interp/embedded/tiny_facts/weights/interp_config.json"
BASE = dict(d_model=16, n_layers=2, n_heads=4, d_head=4, d_mlp=32, d_vocab=20, n_ctx=8)


def test_old_saved_config_still_loads():
    saved = json.loads(EMBEDDED.read_text())["config"]
    assert "norms" not in saved  # written before the sub-configs existed
    cfg = ModelConfig.from_dict(saved)
    assert cfg.norms == NormLayout() and cfg.soft_caps == SoftCaps() and cfg.rope_scaling is None


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    cfg = PRESETS[name]
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and hash(again) == hash(cfg)


def test_longrope_round_trip():
    scaling = RopeScaling(
        "longrope", original_max_position_embeddings=4, short_factor=[1, 2], long_factor=[3, 4]
    )
    cfg = ModelConfig(**BASE, positional="rotary", rope_scaling=scaling)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(rotary_dim=3, positional="rotary"), "rotary_dim must be even"),
        (dict(rotary_dim=6, positional="rotary"), "rotary_dim must be even"),
        (dict(norms=NormLayout(shared_ln=True)), "needs parallel_attn_mlp"),
        (dict(norms=NormLayout(residual=True), parallel_attn_mlp=True), "cannot also be parallel"),
        (dict(rope_scaling=RopeScaling("linear", factor=2.0)), "needs positional='rotary'"),
        (dict(attn_scale=0.0), "attn_scale must be positive"),
        (dict(norms={"qk_norm": "sideways"}), "qk_norm='sideways'"),
        (dict(soft_caps="50"), "soft_caps must be a SoftCaps"),
    ],
)
def test_bad_values_are_named(kw, message):
    with pytest.raises(ValueError, match=message):
        ModelConfig(**BASE | kw)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RopeScaling("ntk-by-parts"), "rope_type='ntk-by-parts'"),
        (lambda: RopeScaling("llama3", factor=8.0), "needs original_max_position_embeddings"),
        (lambda: RopeScaling("longrope", original_max_position_embeddings=4), "short_factor and long_factor"),
        (lambda: SoftCaps(attn_scores_soft_cap=-1.0), "must be positive or None"),
        (lambda: NormLayout(residual=True, post=True), "post-LN"),
    ],
)
def test_bad_sub_configs_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
