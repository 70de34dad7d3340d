"""Train the embedded tiny-facts model: `python experiments/train_tiny_facts.py` reproduces the shipped one.

(`python -m interp.embedded.tiny_facts.train` is the same; the experiments script is a thin wrapper.)

Pipeline: train the byte-level BPE on the corpus, build a small GPT-2-style `HookedTransformer` with a
sliding window in the first attention layer(s), train it with AdamW (warmup + cosine decay) on the
deterministic document stream, then write the checkpoint, `eval.json` (accuracies and ablation table)
and return the metrics. Everything is seeded; torch runs on 2 threads (CPU ops are then
deterministic for a fixed thread count).

Batches hold one document per row, right padded, never packed: a packed row would let a binding query
("Ana speaks") attend to another document's "Ana lives in ...", which is exactly the confusion binding
must not learn. Rows are bucketed by length so padding wastes little compute. With right padding the
plain causal mask already keeps real tokens from seeing padding, so training uses the fused path with no
attention mask; only the loss masks out padded targets.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from interp import HookedTransformer, ModelConfig
from interp.embedded import weights_dir
from interp.embedded.tiny_facts import corpus
from interp.embedded.tiny_facts.evaluate import ablation_table, evaluate
from interp.embedded.tiny_facts.tokenizer import BOS, load_hf_tokenizer, save_tokenizer, train_tokenizer
from interp.transformer import lm_loss

DEFAULT_OUT = weights_dir("tiny-facts")


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the checkpoint; written into eval.json so a figure names its recipe."""

    steps: int = 3000  # optimizer steps (the shipped checkpoint, R7 in MODEL_CARD.md)
    batch_size: int = 64  # documents per step (one per row; ~17 tokens each)
    lr: float = 3e-3  # peak AdamW learning rate
    warmup: int = 100  # linear warmup steps, then cosine decay to lr_min_frac * lr
    lr_min_frac: float = 0.05
    weight_decay: float = 0.05  # on matrices only; norms, biases and embeddings' positions are not decayed
    seed: int = 0  # model init, document stream and batch order
    split_seed: int = 0  # which templates / scene pairs are held out (eval_sets uses the same)
    tokenizer_docs: int = 5000  # documents the BPE is trained on
    # Fraction of input tokens (never BOS) replaced by a uniformly random token; targets stay clean.
    # Why: never-trained templates contain words the corpus never uses, whose embeddings are untrained
    # noise; learning to read through noise is what lets those templates be answered.
    token_noise: float = 0.03
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_mlp: int = 512
    n_ctx: int = 64
    # Layer-0 window 3 (the token and the two before it): attention 0 cannot copy the subject to the last
    # token, so the fact lookup must happen at the subject and be moved later (see MODEL_CARD.md).
    attn_windows: tuple[int | None, ...] = field(default=(3, None, None, None))


QUICK = Recipe(steps=40, batch_size=16, warmup=5, tokenizer_docs=600, d_model=32, n_layers=2, n_heads=2,
               d_mlp=64, attn_windows=(3, None))  # fmt: skip


def seed_everything(seed: int) -> None:
    # No torch.use_deterministic_algorithms: on CPU with a fixed thread count every op we use is already
    # deterministic, and the flag disables AdamW's foreach path (10x slower optimizer steps).
    random.seed(seed)
    torch.manual_seed(seed)


def batches(tok: object, recipe: Recipe, pool: int = 32) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (tokens, mask) batches: `pool` batches' worth of documents, sorted by length, shuffled."""
    docs = corpus.iter_training_documents(recipe.seed, recipe.split_seed)
    rng = random.Random(recipe.seed)
    bos = tok.token_to_id(BOS)
    while True:
        chunk = list(itertools.islice(docs, pool * recipe.batch_size))
        ids = [[bos, *e.ids][: recipe.n_ctx] for e in tok.encode_batch(chunk)]
        ids.sort(key=len)  # stable sort: deterministic
        groups = [ids[i : i + recipe.batch_size] for i in range(0, len(ids), recipe.batch_size)]
        rng.shuffle(groups)
        for group in groups:
            width = max(map(len, group))
            tokens = torch.full((len(group), width), bos, dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for r, row in enumerate(group):
                tokens[r, : len(row)] = torch.tensor(row)
                mask[r, : len(row)] = 1
            yield tokens, mask


def lr_at(step: int, recipe: Recipe) -> float:
    if step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    t = (step - recipe.warmup) / max(1, recipe.steps - recipe.warmup)
    floor = recipe.lr * recipe.lr_min_frac
    return floor + (recipe.lr - floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_model(recipe: Recipe, out: Path) -> HookedTransformer:
    """Train the tokenizer (saved into `out`) and build a freshly initialised model around it."""
    docs = corpus.training_documents(recipe.tokenizer_docs, seed=recipe.seed, split_seed=recipe.split_seed)
    save_tokenizer(train_tokenizer(docs), out)
    hf_tok = load_hf_tokenizer(out)
    cfg = ModelConfig(
        d_model=recipe.d_model,
        n_layers=recipe.n_layers,
        n_heads=recipe.n_heads,
        d_head=recipe.d_model // recipe.n_heads,
        d_mlp=recipe.d_mlp,
        d_vocab=len(hf_tok),  # the closed-world BPE stops well below its cap
        n_ctx=recipe.n_ctx,
        attn_windows=recipe.attn_windows,
    )
    model = HookedTransformer(cfg, hf_tok, default_prepend_bos=True, init=False)
    model.init_weights(seed=recipe.seed)
    return model


def train(
    recipe: Recipe, out: Path = DEFAULT_OUT, full_eval: bool = True, progress: bool = True
) -> dict[str, object]:
    """Train with `recipe`, save the model into `out` and return the metrics written to `out/eval.json`.

    The metrics hold the recipe, the loss (first and last 10-step means, 50-step means every 100 steps), the
    wall time, and with `full_eval` the accuracy per eval set and the ablation table.
    """
    seed_everything(recipe.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = build_model(recipe, out)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "W_pos" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "W_pos" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=recipe.lr,
        betas=(0.9, 0.98),
    )
    start = time.time()
    losses: list[float] = []
    model.train()
    data = batches(model.tokenizer.backend_tokenizer, recipe)
    gen = torch.Generator().manual_seed(recipe.seed)  # token noise
    bar = tqdm(range(recipe.steps), desc="train", disable=not progress, mininterval=2.0)
    for step in bar:
        tokens, mask = next(data)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, recipe)
        inputs = tokens
        if recipe.token_noise > 0:
            noise = torch.rand(tokens.shape, generator=gen) < recipe.token_noise
            noise[:, 0] = False
            random_ids = torch.randint(1, model.cfg.d_vocab, tokens.shape, generator=gen)
            inputs = torch.where(noise & mask.bool(), random_ids, tokens)
        logits = model(inputs)  # fused causal path; see the module docstring for why no mask is needed
        loss = lm_loss(logits, tokens, mask)  # targets are the clean tokens
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 20 == 0:
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.3f}")
    model.eval()
    metrics: dict[str, object] = {
        "recipe": asdict(recipe),
        "train_seconds": round(time.time() - start, 1),
        "loss_first": sum(losses[:10]) / len(losses[:10]),  # mean of the first 10 steps
        "loss_last": sum(losses[-10:]) / len(losses[-10:]),  # mean of the last 10 steps
        "loss_curve": {s: round(sum(losses[s : s + 50]) / len(losses[s : s + 50]), 4) for s in range(0, len(losses), 100)},
        "n_params": sum(p.numel() for p in model.parameters()),
    }  # fmt: skip
    model.save(out)
    if full_eval:
        metrics["accuracy"] = evaluate(model, seed=recipe.split_seed)
        sets = corpus.eval_sets(recipe.split_seed)
        # A fixed 400-example sample per set: 16 ablated runs per set stay affordable on 2 cores.
        rng = random.Random(recipe.seed)
        metrics["ablation"] = {
            name: ablation_table(model, rng.sample(sets[name], min(400, len(sets[name]))))
            for name in ("trained", "unseen", "disambiguation_heldout", "binding1", "binding2")
        }
    (out / "eval.json").write_text(json.dumps(metrics, indent=2) + "\n")
    metrics["model"] = model
    return metrics


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--quick", action="store_true", help="a tiny config for a few dozen steps (tests)")
    args = p.parse_args(argv)
    torch.set_num_threads(2)  # the documented budget: 2 CPU cores (callers of train() choose their own)
    recipe = QUICK if args.quick else Recipe()
    overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    recipe = Recipe(**{**asdict(recipe), **overrides})
    metrics = train(recipe, args.out, full_eval=not args.quick)
    print(json.dumps({k: metrics[k] for k in ("train_seconds", "loss_first", "loss_last")}))
    if "accuracy" in metrics:
        print(json.dumps(metrics["accuracy"], indent=2))


if __name__ == "__main__":
    main()
