"""Activation patching: interp's batched sweeps vs TransformerLens 4 (bridge), on a random GPT-2-small.

Both tools run the same sweeps on the same weights and prompt pair (18 tokens, two corrupted positions),
in one process, and must agree to 1e-4:
- resid_pre, every (layer, position): `get_act_patch_resid_pre` vs `denoise(..., Resid.every(...))`;
- head outputs, every (layer, head): `get_act_patch_attn_head_out_all_pos` vs `denoise(..., Head.every(...))`.
TransformerLens runs one full forward (all-position logits) per cell; interp stacks cells along the batch,
starts each forward at the patched block, unembeds only the last position, and skips cells whose clean and
corrupted activations are equal (no-op patches). Attribution patching is timed in forward-equivalents
(one plain forward with logits at every position = 1).

    .venv/bin/python experiments/benchmarks/patching.py            # GPT-2 small: 12 layers, 124M params
    .venv/bin/python experiments/benchmarks/patching.py --quick    # 2 layers (smoke test)

Both sides run on torch's default threads (all cores; 2 on our machines). `--threads 1` is steadier on a
machine shared with other work; measured figures for both settings are in README.md.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # TransformerLens's per-cell bars would bury the table

import torch  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402

import interp  # noqa: E402
from interp.analysis import Head, Resid, attribution_patch, correlation, denoise, logit_diff  # noqa: E402


def build(n_layer: int, device: str):
    from transformer_lens.model_bridge.sources import build_bridge_from_module

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, attn_implementation="eager")).eval()
    ours = interp.load(hf, device=device)
    bridge = build_bridge_from_module(copy.deepcopy(hf).to(device), "GPT2LMHeadModel", hf_config=hf.config)
    return ours, bridge.eval()


def timed(fn):
    sync()
    t0 = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t0


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 layers instead of 12")
    parser.add_argument("--n-pos", type=int, default=18, help="prompt length in tokens (16-20 in the issue)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5, help="timings of each interp sweep (median kept)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformer_lens.patching as tl

    model, bridge = build(2 if args.quick else 12, args.device)
    cfg = model.cfg
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, cfg.d_vocab, (1, args.n_pos), generator=gen).to(args.device)
    corrupted = clean.clone()
    corrupted[0, 3] = (clean[0, 3] + 1000) % cfg.d_vocab  # the "subject" tokens differ
    corrupted[0, 4] = (clean[0, 4] + 2000) % cfg.d_vocab
    # Random weights have no facts; with tied embeddings the residual still carries its tokens, so the
    # clean-vs-corrupted subject token's logit difference moves with every patch that carries the subject.
    metric = logit_diff(int(clean[0, 3]), int(corrupted[0, 3]))

    def tl_metric(logits: torch.Tensor) -> torch.Tensor:
        return metric(logits[:, -1])

    with torch.no_grad():  # warm up both
        for _ in range(2):
            model(clean), bridge(clean)

    sweeps = [
        ("resid_pre (layer x pos)", Resid.every(model, args.n_pos), tl.get_act_patch_resid_pre, (cfg.n_layers, args.n_pos)),
        ("head out (layer x head)", Head.every(model), tl.get_act_patch_attn_head_out_all_pos, (cfg.n_layers, cfg.n_heads)),
    ]  # fmt: skip
    rows, exact = [], {}
    for name, sites, tl_fn, shape in sweeps:

        def run_ours(sites=sites):
            return denoise(model, clean, corrupted, sites, metric, progress=False)

        def run_tl(tl_fn=tl_fn):  # the clean cache is part of TransformerLens's sweep, as ours is of ours
            with torch.no_grad():
                _, clean_cache = bridge.run_with_cache(clean)
                return tl_fn(bridge, corrupted, clean_cache, tl_metric).cpu()

        # TransformerLens's sweep is one forward per cell, already an average over hundreds of forwards;
        # ours is ~n_layers forwards, so it is timed `repeats` times around it and the median kept.
        ours = [timed(run_ours) for _ in range(args.repeats // 2)]
        expected, tl_s = timed(run_tl)
        ours += [timed(run_ours) for _ in range(args.repeats - len(ours))]
        df, ours_s = ours[0][0], statistics.median(t for _, t in ours)
        got = torch.tensor(df["metric"].to_numpy(), dtype=torch.float32).view(shape)
        diff = float((got - expected).abs().max())
        n_ours = f"{df.attrs['n_forward']} ({df.attrs['n_skipped']} no-op)"
        rows.append((name, len(sites), n_ours, ours_s, len(sites) + 1, tl_s, tl_s / ours_s, diff))
        exact[name] = df

    all_sites = sweeps[0][1] + sweeps[1][1]
    attr_times, forward_times = [], []
    for _ in range(max(args.repeats, 3)):  # alternate, so load changes hit both alike
        attr, t = timed(lambda: attribution_patch(model, clean, corrupted, all_sites, metric))
        attr_times.append(t)
        with torch.no_grad():  # the unit: one plain forward, logits at every position
            forward_times.append(timed(lambda: model(clean))[1])
    attr_s, forward_s = statistics.median(attr_times), statistics.median(forward_times)
    r_resid = correlation(attr.iloc[: len(sweeps[0][1])], exact[sweeps[0][0]])
    r_head = correlation(attr.iloc[len(sweeps[0][1]) :].reset_index(drop=True), exact[sweeps[1][0]])

    print(f"\nrandom GPT-2 ({cfg.n_layers} layers, d_model {cfg.d_model}), {args.n_pos}-token prompt pair, "
          f"{args.device}, {args.threads} thread(s), torch {torch.__version__}")  # fmt: skip
    head = f"{'sweep':<26}{'cells':>6}{'interp fwd (cells skipped)':>28}{'interp s':>10}{'TL fwd':>8}{'TL s':>8}{'speed-up':>10}{'max |diff|':>12}"
    print(head + "\n" + "-" * len(head))
    for name, cells, n_ours, ours_s, n_tl, tl_s, ratio, diff in rows:
        print(
            f"{name:<26}{cells:>6}{n_ours:>28}{ours_s:>10.2f}{n_tl:>8}{tl_s:>8.2f}{ratio:>9.1f}x{diff:>12.2e}"
        )
    print(
        f"\nattribution patching, all {len(all_sites)} sites above: {attr_s:.3f} s = "
        f"{attr_s / forward_s:.2f} forward-equivalents (one full forward: {forward_s:.3f} s); "
        f"correlation with exact patching: resid_pre {r_resid:.3f}, heads {r_head:.3f}"
    )
    worst = max(r[-1] for r in rows)
    if worst > 1e-4:
        raise SystemExit(f"FAIL: interp and TransformerLens differ by {worst:.2e} (> 1e-4)")
    print("results equal within 1e-4: OK")


if __name__ == "__main__":
    main()
