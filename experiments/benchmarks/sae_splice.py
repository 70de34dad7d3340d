"""Splice overhead and feature-table throughput, measured side by side in one process.

- A random GPT-2-small-shaped model and a random TopK SAE (d_sae = 8 × d_model, k = 32) on
  blocks.6.hook_resid_post: a plain forward vs the same forward with the SAE spliced (with and without the
  error term), interleaved over rounds; the ratio is spliced / plain.
- The feature tables (top contexts + activation stats) over a 10k-token corpus on the same model, in tokens/s,
  beside a plain `run_with_cache` pass over the same corpus (the floor any table pays).

    .venv/bin/python experiments/benchmarks/sae_splice.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

import interp  # noqa: E402
from interp.sae import SAE, SAEConfig  # noqa: E402
from interp.sae.features import activation_stats, top_contexts  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 layers, 2k tokens")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    n_layer = 2 if args.quick else 12
    torch.manual_seed(0)
    model = interp.load(GPT2LMHeadModel(GPT2Config(n_layer=n_layer, attn_implementation="eager")).eval())
    d = model.cfg.d_model
    sae = SAE(
        SAEConfig("topk", d_in=d, d_sae=8 * d, hook_name=f"blocks.{n_layer // 2}.hook_resid_post", k=32)
    )
    with torch.no_grad():
        for param in sae.parameters():
            param.normal_(0, 0.02)
    tokens = torch.randint(0, model.cfg.d_vocab, (4, 128), generator=torch.Generator().manual_seed(1))

    def plain():
        with torch.no_grad():
            model(tokens)

    def spliced():
        with torch.no_grad(), model.saes([sae]):
            model(tokens)

    def spliced_exact():
        with torch.no_grad(), model.saes([sae], use_error_term=True):
            model(tokens)

    runners = {"plain": plain, "spliced": spliced, "spliced + error term": spliced_exact}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for fn in runners.values():
        fn()  # warm-up
    for _ in range(args.rounds):
        for name, fn in runners.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["plain"])
    print(f"forward 4×128 on a {n_layer}-layer GPT-2-shaped model, SAE d_sae={sae.cfg.d_sae} k=32 ({torch.get_num_threads()} threads)")  # fmt: skip
    for name, ts in times.items():
        print(f"  {name:<22} {statistics.median(ts) * 1e3:8.1f} ms   {statistics.median(ts) / base:5.2f}×")

    n_tokens = 2_000 if args.quick else 10_000
    corpus = torch.randint(
        0, model.cfg.d_vocab, (n_tokens // 100, 100), generator=torch.Generator().manual_seed(2)
    )
    t0 = time.perf_counter()
    for i in range(0, len(corpus), 64):
        model.run_with_cache(corpus[i : i + 64], names_filter=sae.cfg.hook_name)
    floor = time.perf_counter() - t0
    t0 = time.perf_counter()
    top_contexts(model, sae, corpus, n=10, progress=False)
    t_top = time.perf_counter() - t0
    t0 = time.perf_counter()
    activation_stats(model, sae, corpus, progress=False)
    t_stats = time.perf_counter() - t0
    print(f"feature tables over {n_tokens:,} tokens")
    print(f"  run_with_cache only    {floor:6.2f} s   {n_tokens / floor:9,.0f} tok/s   1.00×")
    print(f"  top_contexts (n=10)    {t_top:6.2f} s   {n_tokens / t_top:9,.0f} tok/s   {t_top / floor:.2f}×")
    print(
        f"  activation_stats       {t_stats:6.2f} s   {n_tokens / t_stats:9,.0f} tok/s   {t_stats / floor:.2f}×"
    )


if __name__ == "__main__":
    main()
