"""`model.cfg` under TL's names, `model.device`/`dtype`, eval mode, TL aliases, version and reprs."""

from __future__ import annotations

import copy
from importlib.metadata import version

import pytest
import torch
from compat_helpers import TL3, gpt2, hf_gpt2, hf_llama_gqa, llama, tl_reference, word_tokenizer

import interp
from interp import HookedTransformer, ModelConfig
from interp.compat import aliases


def test_tl_names_on_gpt2_and_llama():
    g, ll = gpt2(), llama()
    assert (g.cfg.normalization_type, ll.cfg.normalization_type) == ("LN", "RMS")
    assert (g.cfg.positional_embedding_type, ll.cfg.positional_embedding_type) == ("standard", "rotary")
    assert (g.cfg.n_key_value_heads, ll.cfg.n_key_value_heads) == (None, 2)
    assert g.cfg.eps == g.config.norm_eps == 1e-5 and ll.cfg.eps == ll.config.norm_eps
    assert g.cfg.d_vocab_out == g.cfg.d_vocab and g.cfg.rotary_dim is None and ll.cfg.rotary_dim == 8
    assert (
        g.cfg.original_architecture == "GPT2LMHeadModel"
        and ll.cfg.original_architecture == "LlamaForCausalLM"
    )
    assert g.cfg.default_prepend_bos is True and g.cfg.parallel_attn_mlp is False
    # interp's own names still work through the view.
    assert g.cfg.d_model == 32 and g.cfg.kv_heads == 4 and ll.cfg.kv_heads == 2 and g.cfg.window(0) is None


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_tl_names_equal_transformer_lens_config(kind):
    """Against the installed TL's own config on the same weights (TL 3's HookedTransformer or TL 4's bridge)."""
    ours, hf = (gpt2(), hf_gpt2()) if kind == "gpt2" else (llama(), hf_llama_gqa())
    ref = tl_reference(hf).cfg
    names = ["d_model", "n_layers", "n_heads", "d_head", "d_mlp", "d_vocab", "n_ctx", "act_fn", "eps",
             "normalization_type", "positional_embedding_type", "n_key_value_heads", "d_vocab_out",
             "attn_only", "parallel_attn_mlp", "gated_mlp", "final_rms", "default_prepend_bos", "device"]  # fmt: skip
    if kind == "llama" and TL3:  # TL 4's bridge leaves rotary_dim unset
        names += ["rotary_dim", "rotary_base"]
    for name in names:
        assert getattr(ours.cfg, name) == getattr(ref, name), name


def test_device_and_dtype_follow_the_weights():
    m = interp.load(hf_gpt2(), dtype=torch.float64)
    assert (
        m.cfg.device == "cpu" and m.device == torch.device("cpu") and m.cfg.dtype == m.dtype == torch.float64
    )
    m = m.to(torch.float32)
    assert m.cfg.dtype == torch.float32  # a view, not a copy taken at load


def test_view_is_read_only_and_raw_config_stays_reachable():
    m = gpt2()
    with pytest.raises(AttributeError, match="read-only"):
        m.cfg.d_model = 3
    with pytest.raises(AttributeError, match="no 'nonsense'"):
        _ = m.cfg.nonsense
    assert isinstance(m.config, ModelConfig) and m.cfg == m.config
    again = HookedTransformer(m.cfg)  # TL code passes model.cfg around
    assert again.config == m.config
    clone = copy.deepcopy(m)
    assert clone.cfg._model is clone  # the copy's view is bound to the copy


def test_load_returns_eval_mode_and_name():
    hf = hf_gpt2().train()
    m = interp.load(hf, tokenizer=word_tokenizer())
    assert not m.training and hf.training  # the caller's model is untouched
    assert interp.load().cfg.model_name == "tiny-facts-2"  # the default embedded model


def test_tl_aliases_map_to_hub_ids(monkeypatch):
    import interp.loading as loading

    asked = []

    def fake_download(repo_id, embedded):
        asked.append(repo_id)
        raise interp.LoadError("offline")

    monkeypatch.setattr(loading, "download", fake_download)
    for name, hub in [("gpt2-small", "gpt2"), ("pythia-70m", "EleutherAI/pythia-70m"), ("gpt2", "gpt2")]:
        with pytest.raises(interp.LoadError):
            interp.load(name)
        assert asked[-1] == hub
    assert aliases.resolve("tiny-stories-1M") == "roneneldan/TinyStories-1M"


def test_version_and_reprs():
    assert interp.__version__ == version("interp")
    r = repr(llama())
    assert "LlamaForCausalLM" in r and "6 heads (2 kv)" in r and "cpu" in r and "float32" in r
    _, cache = gpt2().run_with_cache(torch.tensor([[1, 2, 3]]))
    text = repr(cache)
    assert text.splitlines()[0].startswith(f"ActivationCache({len(cache)} activations")
    assert "layer 2: resid_pre" in text and "MiB" in text
