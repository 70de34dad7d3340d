"""interp.params against Hugging Face's own models (built on the meta device: shapes only, no memory)."""

from __future__ import annotations

import pytest
import torch

from interp.cli import main
from interp.config import ModelConfig
from interp.params import PRESETS, mlp_share, param_breakdown, param_counts


def _hf_model(name: str) -> torch.nn.Module:
    """The Hugging Face model for a preset, configured from the preset's numbers."""
    from transformers import (
        GPT2Config,
        GPT2LMHeadModel,
        LlamaConfig,
        LlamaForCausalLM,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    cfg = PRESETS[name]
    if name in _FAMILY_PRESETS:
        cls, hf_cfg = _FAMILY_PRESETS[name]()
    elif name.startswith("gpt2"):
        hf_cfg = GPT2Config(
            n_layer=cfg.n_layers,
            n_embd=cfg.d_model,
            n_head=cfg.n_heads,
            n_inner=cfg.d_mlp,
            n_positions=cfg.n_ctx,
            vocab_size=cfg.d_vocab,
        )
        cls = GPT2LMHeadModel
    else:
        common = dict(
            vocab_size=cfg.d_vocab,
            hidden_size=cfg.d_model,
            intermediate_size=cfg.d_mlp,
            num_hidden_layers=cfg.n_layers,
            num_attention_heads=cfg.n_heads,
            num_key_value_heads=cfg.kv_heads,
            max_position_embeddings=cfg.n_ctx,
            tie_word_embeddings=cfg.tie_embeddings,
        )
        if name.startswith("qwen2"):  # Qwen2's Q/K/V biases are built in, not a config option
            hf_cfg, cls = Qwen2Config(**common), Qwen2ForCausalLM
        else:
            hf_cfg = LlamaConfig(**common, head_dim=cfg.d_head, attention_bias=False, mlp_bias=False)
            cls = LlamaForCausalLM
    with torch.device("meta"):  # ~0.1 s even for the 70B: no storage is allocated
        return cls(hf_cfg)


def _decoder_kw(cfg: ModelConfig) -> dict:
    return dict(
        vocab_size=cfg.d_vocab, hidden_size=cfg.d_model, intermediate_size=cfg.d_mlp,
        num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads, num_key_value_heads=cfg.kv_heads,
        head_dim=cfg.d_head, max_position_embeddings=cfg.n_ctx, tie_word_embeddings=cfg.tie_embeddings,
    )  # fmt: skip


def _pythia_hf(name: str):
    import transformers as tr

    c = PRESETS[name]
    return tr.GPTNeoXForCausalLM, tr.GPTNeoXConfig(
        vocab_size=c.d_vocab, hidden_size=c.d_model, intermediate_size=c.d_mlp, num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads, rotary_pct=0.25, max_position_embeddings=c.n_ctx,
        tie_word_embeddings=False,
    )  # fmt: skip


def _hf(cls_name: str, cfg_name: str, name: str, drop: tuple[str, ...] = (), **kw):
    import transformers as tr

    args = {k: v for k, v in _decoder_kw(PRESETS[name]).items() if k not in drop} | kw
    return lambda: (getattr(tr, cls_name), getattr(tr, cfg_name)(**args))


_FAMILY_PRESETS = {
    **{n: (lambda n=n: _pythia_hf(n)) for n in ("pythia-160m", "pythia-1.4b", "pythia-6.9b")},
    "gemma-2-2b": _hf("Gemma2ForCausalLM", "Gemma2Config", "gemma-2-2b"),
    "gemma-2-9b": _hf("Gemma2ForCausalLM", "Gemma2Config", "gemma-2-9b"),
    "gemma-3-4b": _hf("Gemma3ForCausalLM", "Gemma3TextConfig", "gemma-3-4b"),
    "llama-3.1-8b": _hf("LlamaForCausalLM", "LlamaConfig", "llama-3.1-8b"),
    "qwen3-8b": _hf("Qwen3ForCausalLM", "Qwen3Config", "qwen3-8b"),
    "olmo-2-7b": _hf("Olmo2ForCausalLM", "Olmo2Config", "olmo-2-7b", drop=("head_dim",)),
}


@pytest.mark.parametrize("name", list(PRESETS))
def test_total_matches_hugging_face(name: str) -> None:
    # parameters() yields a tied matrix once, as param_counts counts it.
    hf_total = sum(p.numel() for p in _hf_model(name).parameters())
    assert param_breakdown(name)["params"].iloc[-1] == hf_total


@pytest.mark.parametrize(
    "name, total",
    [
        ("gpt2", 124_439_808),
        ("llama-3-8b", 8_030_261_248),
        ("llama-3-70b", 70_553_706_496),
        ("qwen2-7b", 7_615_616_512),
        ("pythia-160m", 162_322_944),
        ("pythia-1.4b", 1_414_647_808),
        ("pythia-6.9b", 6_857_302_016),
        ("gemma-2-2b", 2_614_341_888),
        ("gemma-2-9b", 9_241_705_984),
        ("gemma-3-4b", 3_880_263_168),
        ("llama-3.1-8b", 8_030_261_248),
        ("qwen3-8b", 8_190_735_360),
        ("olmo-2-7b", 7_298_617_344),
    ],
)
def test_known_totals(name: str, total: int) -> None:
    assert sum(param_counts(PRESETS[name]).values()) == total


def test_breakdown_table() -> None:
    df = param_breakdown("gpt2")
    assert list(df.columns) == ["component", "params", "share"]
    assert list(df["component"]) == ["embedding", "attention", "mlp", "norms", "unembedding", "total"]
    assert df["params"].iloc[-1] == df["params"].iloc[:-1].sum()
    assert df["share"].iloc[-1] == 1.0
    assert df["share"].iloc[:-1].sum() == pytest.approx(1.0)
    # gpt2 ties W_U to W_E: the shared matrix is counted once, under embedding.
    assert df.set_index("component").loc["unembedding", "params"] == 0
    assert df.set_index("component").loc["embedding", "params"] == 50257 * 768 + 1024 * 768


def test_mlp_share_gpt2() -> None:
    # "FFNs hold 2/3 of the parameters" is about non-embedding parameters; gpt2's 38.6M-entry
    # embedding pulls the MLPs' share of the *total* down to under a half.
    df = param_breakdown("gpt2")
    assert mlp_share(df) == pytest.approx(0.4554, abs=1e-3)
    assert mlp_share(df, non_embedding=True) == pytest.approx(0.6663, abs=1e-3)


def test_untied_unembedding_counted() -> None:
    counts = param_counts(PRESETS["llama-3-8b"])
    assert counts["unembedding"] == 4096 * 128256
    assert counts["embedding"] == 4096 * 128256  # no learned positions under RoPE
    assert counts["norms"] == (2 * 32 + 1) * 4096  # RMSNorm: weight only


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="gpt2.*llama-3-8b"):
        param_breakdown("nope")


class _LayoutModel(torch.nn.Module):
    """A stand-in with HookedTransformer's parameter layout (shapes only), to test the model path."""

    def __init__(self, cfg: ModelConfig, extra: int = 0) -> None:
        super().__init__()
        self.cfg = cfg
        d, h, kv, dh = cfg.d_model, cfg.n_heads, cfg.kv_heads, cfg.d_head
        shapes = {"W_E": (cfg.d_vocab, d), "W_pos": (cfg.n_ctx, d), "ln_final_w": (d,), "ln_final_b": (d,)}
        for layer in range(cfg.n_layers):
            shapes |= {
                f"{layer}_ln1_w": (d,),
                f"{layer}_ln1_b": (d,),
                f"{layer}_ln2_w": (d,),
                f"{layer}_ln2_b": (d,),
                f"{layer}_W_Q": (h, d, dh),
                f"{layer}_W_K": (kv, d, dh),
                f"{layer}_W_V": (kv, d, dh),
                f"{layer}_W_O": (h, dh, d),
                f"{layer}_b_Q": (h, dh),
                f"{layer}_b_K": (kv, dh),
                f"{layer}_b_V": (kv, dh),
                f"{layer}_b_O": (d,),
                f"{layer}_W_in": (d, cfg.d_mlp),
                f"{layer}_W_out": (cfg.d_mlp, d),
                f"{layer}_b_in": (cfg.d_mlp,),
                f"{layer}_b_out": (d,),
            }
        if extra:
            shapes["extra"] = (extra,)
        for name, shape in shapes.items():
            self.register_parameter(name, torch.nn.Parameter(torch.empty(shape, device="meta")))


_TINY = ModelConfig(d_model=16, n_layers=2, n_heads=4, n_kv_heads=2, d_head=4, d_mlp=64, d_vocab=50, n_ctx=8)


def test_module_checked_against_its_parameters() -> None:
    df = param_breakdown(_LayoutModel(_TINY))
    assert df["params"].iloc[-1] == sum(param_counts(_TINY).values())
    with pytest.raises(ValueError, match="no longer matches"):
        param_breakdown(_LayoutModel(_TINY, extra=3))


def test_module_without_cfg() -> None:
    with pytest.raises(TypeError, match="cfg"):
        param_breakdown(torch.nn.Linear(2, 2))


def test_cli_params(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "gpt2"]) == 0
    out = capsys.readouterr().out
    assert "124,439,808" in out
    assert "MLP share: 66.6%" in out


def test_cli_params_all(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "--all"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert "70,553,706,496" in out


def test_cli_unknown_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["params", "nope"]) == 2
    captured = capsys.readouterr()
    assert "nope" in captured.err and "llama-3-8b" in captured.err
    assert "Traceback" not in captured.err
