"""Forward overhead of interp vs Hugging Face and TransformerLens 4 on random GPT-2-, Llama- and Gemma-2-shaped models.

All runners are timed interleaved (shuffled each round) in one process and reported as medians and ratios
to the HF eager forward, so machine noise hits every runner alike. Run:

    .venv/bin/python experiments/benchmarks/forward_overhead.py            # full: 124M params, 1x16 and 4x64
    .venv/bin/python experiments/benchmarks/forward_overhead.py --quick    # 2 layers, a few rounds (smoke test)
    .venv/bin/python experiments/benchmarks/forward_overhead.py --model llama     # or gemma2, or all

The Llama and Gemma 2 shapes are ~GPT-2-small-sized (12 layers, d_model 768, grouped-query heads, 32k
vocabulary); Gemma 2's soft-caps, sandwich norms and alternating windows are all on. TransformerLens is
timed on the GPT-2 shape only.
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Callable

import torch
from transformers import (
    Gemma2Config,
    Gemma2ForCausalLM,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

import interp
from experiments.benchmarks.timing import time_interleaved


def build(n_layer: int):
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=n_layer, attn_implementation="eager")
    hf = GPT2LMHeadModel(cfg).eval()
    hf_sdpa = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, attn_implementation="sdpa")).eval()
    hf_sdpa.load_state_dict(hf.state_dict())
    ours = interp.load(hf)
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    bridge = build_bridge_from_module(
        copy.deepcopy(hf), "GPT2LMHeadModel", hf_config=cfg
    )  # rewires its input
    return hf, hf_sdpa, ours, bridge


_SHAPE = dict(hidden_size=768, intermediate_size=2048, num_attention_heads=12, num_key_value_heads=4,
              vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=False)  # fmt: skip
FAMILIES = {
    "llama": (LlamaForCausalLM, lambda n, attn: LlamaConfig(num_hidden_layers=n, attn_implementation=attn, **_SHAPE)),
    "gemma2": (Gemma2ForCausalLM, lambda n, attn: Gemma2Config(
        num_hidden_layers=n, attn_implementation=attn, head_dim=64, query_pre_attn_scalar=64, sliding_window=32,
        attn_logit_softcapping=50.0, final_logit_softcapping=30.0, **_SHAPE)),
}  # fmt: skip


def build_family(kind: str, n_layer: int):
    """HF eager and sdpa copies of one random model of the family, and interp's load of it."""
    cls, make_cfg = FAMILIES[kind]
    torch.manual_seed(0)
    hf = cls(make_cfg(n_layer, "eager")).eval()
    hf_sdpa = None
    if kind != "gemma2":  # HF has no sdpa path for Gemma 2 (its attention soft-cap)
        hf_sdpa = cls(make_cfg(n_layer, "sdpa")).eval()
        hf_sdpa.load_state_dict(hf.state_dict())
    return hf, hf_sdpa, interp.load(hf)


def make_runners(hf, hf_sdpa, ours, bridge, toks: torch.Tensor) -> dict[str, Callable[[], object]]:
    def resid(name: str) -> bool:
        return "resid" in name

    return {
        "HF eager forward": lambda: hf(toks),
        "HF sdpa forward": lambda: hf_sdpa(toks),
        "interp forward (no hooks)": lambda: ours(toks),
        "interp run_with_cache (all)": lambda: ours.run_with_cache(toks),
        "interp run_with_cache (resid)": lambda: ours.run_with_cache(toks, names_filter=resid),
        "TL bridge forward": lambda: bridge(toks),
        "TL bridge run_with_cache": lambda: bridge.run_with_cache(toks),
    }


def cache_bytes(cache) -> tuple[int, int]:
    """Bytes summed over keys, and bytes of the distinct storages behind them."""
    tensors = [cache[k] for k in cache.keys()]
    keys = sum(t.numel() * t.element_size() for t in tensors)
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}
    return keys, sum(storages.values())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="2 layers and few rounds: a smoke test, not a measurement"
    )
    ap.add_argument(
        "--rounds", type=int, default=0, help="interleaved rounds (default 40 at 1x16, 15 at 4x64)"
    )
    ap.add_argument("--model", choices=["gpt2", *FAMILIES, "all"], default="gpt2", help="model shape")
    args = ap.parse_args(argv)
    n_layer, rounds = (2, 3) if args.quick else (12, args.rounds)
    kinds = [args.model] if args.model != "all" else ["gpt2", *FAMILIES]
    for kind in kinds:
        if kind == "gpt2":
            gpt2_report(n_layer, rounds)
        else:
            family_report(kind, n_layer, rounds)


def family_report(kind: str, n_layer: int, rounds: int) -> None:
    hf, hf_sdpa, ours = build_family(kind, n_layer)
    print(f"\nmodel: {kind} shape, {n_layer} layers, {sum(p.numel() for p in hf.parameters()):,} params; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    for batch, pos in ((1, 16), (4, 64)):
        toks = torch.randint(
            0, hf.config.vocab_size, (batch, pos), generator=torch.Generator().manual_seed(1)
        )
        runners = {
            "HF eager forward": lambda t=toks: hf(t),
            "HF sdpa forward": lambda t=toks: hf_sdpa(t),
            "interp forward (no hooks)": lambda t=toks: ours(t),
            "interp run_with_cache (all)": lambda t=toks: ours.run_with_cache(t),
        }
        if hf_sdpa is None:
            del runners["HF sdpa forward"]
        with torch.no_grad():
            med = time_interleaved(runners, rounds or (40 if pos == 16 else 15))
            diff = (ours(toks) - hf(toks).logits).abs().max().item()
        base = med["HF eager forward"]
        print(f"batch x pos = {batch}x{pos}   (median of interleaved rounds; ratio to HF eager)")
        for k, v in med.items():
            print(f"  {k:32s} {v * 1e3:8.2f} ms   {v / base:5.2f}x")
        print(f"  max |logit diff| interp vs HF: {diff:.2e}")


def gpt2_report(n_layer: int, rounds: int) -> None:
    hf, hf_sdpa, ours, bridge = build(n_layer)
    print(f"model: GPT-2 small shape, {n_layer} layers, {sum(p.numel() for p in hf.parameters()):,} params; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")  # fmt: skip
    for batch, pos in ((1, 16), (4, 64)):
        toks = torch.randint(
            0, hf.config.vocab_size, (batch, pos), generator=torch.Generator().manual_seed(1)
        )
        runners = make_runners(hf, hf_sdpa, ours, bridge, toks)
        with torch.no_grad():
            med = time_interleaved(runners, rounds or (40 if pos == 16 else 15))
        base = med["HF eager forward"]
        print(f"\nbatch x pos = {batch}x{pos}   (median of interleaved rounds; ratio to HF eager)")
        for k, v in med.items():
            print(f"  {k:32s} {v * 1e3:8.2f} ms   {v / base:5.2f}x")
        with torch.no_grad():
            diff = (ours(toks) - hf(toks).logits).abs().max().item()
            _, ours_cache = ours.run_with_cache(toks)
            _, tl_cache = bridge.run_with_cache(toks)
        k_ours, u_ours = cache_bytes(ours_cache)
        k_tl, u_tl = cache_bytes(tl_cache)
        print(f"  max |logit diff| interp vs HF: {diff:.2e}")
        print(f"  cache bytes, keys vs unique storage: interp {k_ours / 2**20:.1f} / {u_ours / 2**20:.1f} MiB "
              f"({len(ours_cache)} keys); TL {k_tl / 2**20:.1f} / {u_tl / 2**20:.1f} MiB ({len(tl_cache)} keys)")  # fmt: skip


if __name__ == "__main__":
    main()
