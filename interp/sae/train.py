"""A small, reproducible trainer for TopK and ReLU (L1) dictionaries: SAEs and transcoders.

    sae, report = interp.sae.train(model, Resid(2, stage="post"), corpus, d_sae=512, k=16, steps=2000)

- TopK (Gao et al. 2024): loss = MSE + `aux_coef` · AuxK, where AuxK reconstructs the residual error from the
  top `aux_k` latents that have not fired for `dead_after` tokens, so dead latents get a gradient again.
- ReLU (Bricken et al. 2023): loss = MSE + `l1` · Σ_i act_i ‖W_dec[i]‖.
- Decoder rows are kept at unit norm after every step; b_dec starts at the mean target.
- Reproducible on CPU for a fixed `seed` and `threads`: the run sets the thread count and restores it.

The report: explained variance, L0, dead fraction, and the next-token loss with the dictionary spliced in
(no error term) against the clean model, on held-out prompts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.sae.config import SAEConfig
from interp.sae.sae import SAE
from interp.sae.store import ActivationStore, Corpus, collect_activations, prompt_batches


@dataclass(frozen=True)
class TrainReport:
    explained_variance: float  # 1 - Σ‖y - ŷ‖² / Σ‖y - ȳ‖² on held-out activations
    l0: float  # mean number of active latents per token
    dead_fraction: float  # latents that never fired on the held-out activations
    ce_clean: float  # next-token loss of the model on the held-out prompts (NaN when none were given)
    ce_spliced: float  # the same with the dictionary spliced in, no error term (NaN likewise)
    steps: int
    seconds: float

    @property
    def ce_increase(self) -> float:
        return self.ce_spliced - self.ce_clean

    def to_dict(self) -> dict[str, float]:
        return {**self.__dict__, "ce_increase": self.ce_increase}


def train(
    model: Any,
    site: Any,
    corpus: Corpus,
    d_sae: int,
    *,
    k: int | None = None,
    l1: float | None = None,
    target: Any = None,
    steps: int = 2000,
    lr: float = 1e-3,
    batch_size: int = 256,
    seed: int = 0,
    threads: int = 2,
    aux_k: int | None = None,
    aux_coef: float = 1 / 32,
    dead_after: int = 20_000,
    eval_corpus: Corpus | None = None,
    store: ActivationStore | None = None,
    progress: bool = True,
) -> tuple[SAE, TrainReport]:
    """Train a TopK (`k=`) or ReLU (`l1=`) dictionary reading `site` (a typed spec) and, for a transcoder,
    writing `target` (e.g. `MLP(layer)` for `MLPIn(layer)`). `store` overrides collecting from `corpus`."""
    import time

    if (k is None) == (l1 is None):
        raise ValueError(
            "give exactly one of k= (a TopK dictionary) or l1= (a ReLU dictionary with an L1 penalty)"
        )
    hook, out_hook = _hook(site, "site"), (None if target is None else _hook(target, "target"))
    if out_hook is not None and k is not None:
        raise ValueError(
            "a transcoder is trained with l1= (ReLU): SAELens has no TopK transcoder architecture, so a TopK "
            "one would be read back with the wrong nonlinearity"
        )
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    start = time.perf_counter()
    try:
        gen = torch.Generator().manual_seed(seed)
        if store is None:
            store = collect_activations(model, hook, corpus, target_hook=out_hook, progress=progress)
        arch = ("topk" if k is not None else "standard") if out_hook is None else "transcoder"
        cfg = SAEConfig(
            arch, d_in=store.d_in, d_sae=d_sae, hook_name=hook, hook_name_out=out_hook, d_out=store.d_out,
            k=k if arch == "topk" else None, apply_b_dec_to_input=out_hook is None,
        )  # fmt: skip
        sae = SAE(cfg)
        _init(sae, store, gen)
        opt = torch.optim.Adam(sae.parameters(), lr=lr)
        last_fired = torch.zeros(d_sae, dtype=torch.long)
        batches = store.batches(batch_size, gen)
        seen = 0
        for step in tqdm(range(steps), desc="train dictionary", disable=not progress):
            x, y = next(batches)
            frac = min(1.0, (step + 1) / max(1, steps // 20))  # 5% warm-up
            for group in opt.param_groups:
                group["lr"] = lr * frac * (0.5 * (1 + math.cos(math.pi * step / steps)) * 0.9 + 0.1)
            pre = _pre(sae, x)
            acts = _topk(pre, k) if k is not None else pre.relu()
            recon = acts @ sae.W_dec + sae.b_dec
            mse = (recon - y).pow(2).sum(-1).mean()
            loss = mse
            seen += x.shape[0]
            fired = (acts > 0).any(0)
            last_fired[fired] = seen
            if k is not None:
                dead = (seen - last_fired) > dead_after
                if dead.any():
                    loss = loss + aux_coef * _aux_loss(sae, pre, dead, y - recon.detach(), aux_k or 2 * k)
            else:
                loss = loss + l1 * (acts * sae.W_dec.norm(dim=-1)).sum(-1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                sae.W_dec /= sae.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-8)
        sae.eval()
        for p in sae.parameters():
            p.requires_grad_(False)
        report = _report(
            model,
            sae,
            store,
            eval_corpus or corpus[: min(len(corpus), 256)],
            steps,
            time.perf_counter() - start,
        )
    finally:
        torch.set_num_threads(old_threads)
    return sae, report


def _hook(site: Any, what: str) -> str:
    name = getattr(site, "hook_name", None)
    if not isinstance(name, str):
        raise TypeError(
            f"{what} must be a typed site spec (e.g. Resid(2, stage='post'), MLPIn(1)), got {site!r}"
        )
    return name


def _init(sae: SAE, store: ActivationStore, gen: torch.Generator) -> None:
    with torch.no_grad():
        w = torch.randn(sae.W_dec.shape, generator=gen)
        sae.W_dec.copy_(w / w.norm(dim=-1, keepdim=True))
        if sae.cfg.d_in == sae.cfg.out_dim:
            sae.W_enc.copy_(sae.W_dec.T)
        else:
            w = torch.randn(sae.W_enc.shape, generator=gen)
            sae.W_enc.copy_(w / w.norm(dim=0, keepdim=True))
        sample = next(store.batches(min(4096, len(store)) if hasattr(store, "__len__") else 4096, gen))
        sae.b_dec.copy_(sample[1].mean(0))
        sae.b_enc.zero_()


def _pre(sae: SAE, x: Tensor) -> Tensor:
    sae_in = x - sae.b_dec if sae._b_dec_in else x
    return sae_in @ sae.W_enc + sae.b_enc


def _topk(pre: Tensor, k: int) -> Tensor:
    values, indices = pre.topk(k, dim=-1, sorted=False)
    return torch.zeros_like(pre).scatter(-1, indices, values.relu())


def _aux_loss(sae: SAE, pre: Tensor, dead: Tensor, error: Tensor, aux_k: int) -> Tensor:
    """AuxK: how well the top `aux_k` dead latents reconstruct what the live ones missed (normalised MSE)."""
    masked = pre.masked_fill(~dead, float("-inf"))
    acts = _topk(masked, min(aux_k, int(dead.sum())))
    acts = torch.nan_to_num(acts, neginf=0.0)
    recon = acts @ sae.W_dec
    return (recon - error).pow(2).sum(-1).mean() / error.pow(2).sum(-1).mean().clamp_min(1e-8)


@torch.no_grad()
def _report(
    model: Any, sae: SAE, store: ActivationStore, prompts: Sequence[str], steps: int, seconds: float
) -> TrainReport:
    gen = torch.Generator().manual_seed(12345)
    size = min(512, len(store)) if hasattr(store, "__len__") else 512
    xs, ys = zip(*(b for _, b in zip(range(8), store.batches(size, gen), strict=False)), strict=True)
    x, y = torch.cat(xs), torch.cat(ys)
    acts = sae.encode(x)
    recon = sae.decode(acts)
    ev = 1 - (y - recon).pow(2).sum() / (y - y.mean(0)).pow(2).sum()
    clean = spliced = float("nan")
    if len(prompts):
        tokens, mask = next(prompt_batches(model, prompts, len(prompts)))
        clean = float(model.loss(tokens, attention_mask=mask))
        with model.saes([sae]):
            spliced = float(model.loss(tokens, attention_mask=mask))
    return TrainReport(
        explained_variance=float(ev), l0=float((acts > 0).float().sum(-1).mean()),
        dead_fraction=float(((acts > 0).sum(0) == 0).float().mean()), ce_clean=clean, ce_spliced=spliced,
        steps=steps, seconds=seconds,
    )  # fmt: skip
