"""Greedy generation speed: interp with and without its KV cache, against Hugging Face `generate`.

A random GPT-2-small model (124M parameters), a 16-token prompt, 64 new tokens, batch 1, all runners timed
interleaved (shuffled each round) in one process; medians. Every runner must produce the same tokens
(checked first), so the comparison is of equal work. Run:

    .venv/bin/python experiments/benchmarks/generation.py            # full: 12 layers, 64 new tokens
    .venv/bin/python experiments/benchmarks/generation.py --quick    # 2 layers, 8 tokens (smoke test)

Targets (issue 12): the cache at least 3x faster than re-running the sequence, and within 1.3x of HF.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from transformers import GPT2Config, GPT2LMHeadModel

import interp
from experiments.benchmarks.timing import time_interleaved
from interp.generation import generate


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 layers, 8 new tokens, 2 rounds")
    parser.add_argument("--new", type=int, default=64, help="new tokens (default 64)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_layer, new, rounds = (2, 8, 2) if args.quick else (12, args.new, args.rounds)
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, attn_implementation="sdpa")).eval()
    hf.generation_config.eos_token_id = None  # never stop early: every runner makes exactly `new` tokens
    hf.generation_config.pad_token_id = 0
    model = interp.load(hf)
    prompt = torch.randint(0, hf.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(prompt)

    def ours(cache: bool) -> Callable[[], torch.Tensor]:
        return lambda: generate(
            model, prompt, new, do_sample=False, stop_at_eos=False, use_past_kv_cache=cache, verbose=False
        )

    def hf_generate() -> torch.Tensor:
        with torch.no_grad():
            return hf.generate(prompt, attention_mask=mask, max_new_tokens=new, do_sample=False)

    runners = {"interp, KV cache": ours(True), "interp, no cache": ours(False), "HF generate": hf_generate}
    outputs = {k: fn() for k, fn in runners.items()}
    for k, out in outputs.items():
        if not torch.equal(out, outputs["HF generate"]):
            raise AssertionError(f"{k} generated different tokens from HF generate")
    times = time_interleaved(runners, rounds, warmup=1)
    print(
        f"{n_layer} layers, prompt 16, {new} new tokens, {torch.get_num_threads()} threads, {rounds} rounds"
    )
    for k, t in times.items():
        print(f"  {k:18s} {t * 1000:8.1f} ms  ({t / new * 1000:6.2f} ms/token)")
    speedup = times["interp, no cache"] / times["interp, KV cache"]
    vs_hf = times["interp, KV cache"] / times["HF generate"]
    print(f"  KV cache speed-up over re-running: {speedup:.2f}x (target >= 3x)")
    print(f"  interp with cache / HF generate:   {vs_hf:.2f}x (target <= 1.3x)")
    return {"speedup": speedup, "vs_hf": vs_hf, **times}


if __name__ == "__main__":
    main()
