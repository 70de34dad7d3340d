"""Linear probes on activations: fit, held-out accuracy per layer, and patching read through a probe.

    probe = fit_probe(x_train, y_train)                     # logistic regression, standardised features
    df, probes = probe_layers(model, prompts, Resid.every(model), pos, labels, train)
    df = probe_patch(model, base, source, sites, readout, read_pos=word)  # patching, probe as the metric

A probe is L2-regularised logistic regression on standardised features, fitted full batch with LBFGS:
deterministic for a seed, and small enough to fit one per layer in well under a second.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import torch
from torch import Tensor

from interp.analysis.runner import Input, Prompt, prepare
from interp.analysis.specs import Cell, Spec, cell_row, cell_sites, validate_cells
from interp.hooks import HookPoint
from interp.transformer import HookedTransformer


@dataclass(frozen=True)
class LinearProbe:
    """margin(x) = ((x − mean) / std) · w + b; positive margins predict label 1."""

    mean: Tensor  # [d]
    std: Tensor  # [d]
    w: Tensor  # [d]
    b: Tensor  # [1]

    def margin(self, x: Tensor) -> Tensor:
        return ((x - self.mean) / self.std) @ self.w + self.b

    def __call__(self, x: Tensor) -> Tensor:
        return self.margin(x)

    def accuracy(self, x: Tensor, y: Tensor) -> float:
        """Share of rows of x whose predicted label (margin > 0) is y (0 or 1)."""
        return float(((self.margin(x) > 0).float() == y).float().mean())


def fit_probe(x: Tensor, y: Tensor, *, seed: int = 0, l2: float = 1e-2, max_iter: int = 100) -> LinearProbe:
    """Logistic regression of y (0/1, [n]) on x ([n, d]): standardised features, L2 penalty, LBFGS."""
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"fit_probe needs x [n, d] and y [n], got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] < 2:
        raise ValueError(f"fit_probe needs at least 2 examples, got {x.shape[0]}")
    torch.manual_seed(seed)
    x, y = x.detach().float(), y.detach().float()
    mu, sd = x.mean(0), x.std(0) + 1e-6
    w, b = torch.zeros(x.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=max_iter, line_search_fn="strong_wolfe")
    z = (x - mu) / sd

    def closure() -> Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return LinearProbe(mu, sd, w.detach(), b.detach())


@torch.no_grad()
def probe_layers(
    model: HookedTransformer,
    input: Input,
    sites: Sequence[Spec],
    pos: Tensor,
    labels: Tensor,
    train: Tensor,
    *,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[LinearProbe]]:
    """One probe per site, read at each example's position `pos` ([batch]): fitted on the `train` rows
    (bool [batch]), scored on them and on the rest (held out).

    Columns: the site's fields, train_acc, test_acc, chance (majority-class rate of the held-out rows),
    n_train, n_test. Also returns the probes, in site order.
    """
    prompt = prepare(model, input)
    sites = list(sites)
    validate_cells(model, sites)
    train = torch.as_tensor(train, dtype=torch.bool)
    if pos.shape != (prompt.batch,) or labels.shape != (prompt.batch,) or train.shape != (prompt.batch,):
        raise ValueError(f"pos, labels and train need one entry per example ({prompt.batch})")
    test = ~train
    if not bool(train.any()) or not bool(test.any()):
        raise ValueError("the probe needs both training and held-out examples")
    names = list(dict.fromkeys(s.hook_name for s in sites))
    _, cache = model.run_with_cache(prompt.tokens, names_filter=names, attention_mask=prompt.mask)
    y = labels.float()
    chance = float(max(y[test].mean(), 1 - y[test].mean()))
    rows, probes = [], []
    for site in sites:
        x = cache[site.hook_name][torch.arange(prompt.batch), pos]
        probe = fit_probe(x[train], y[train], seed=seed)
        acc = [probe.accuracy(x[rows_], y[rows_]) for rows_ in (train, test)]
        rows.append({**site.to_row(), "train_acc": acc[0], "test_acc": acc[1], "chance": chance})
        probes.append(probe)
    df = pd.DataFrame(rows).assign(n_train=int(train.sum()), n_test=int(test.sum()))
    return df, probes


@torch.no_grad()
def probe_patch(
    model: HookedTransformer,
    base: Input,
    source: Input,
    sites: Sequence[Cell],
    readout: Callable[[Tensor], Tensor],
    *,
    read_pos: int,
) -> pd.DataFrame:
    """Patching read through a probe: the base run with each cell's activations taken from the source run,
    scored by `readout(final residual at read_pos)` ([batch, d_model] → [batch]; the final residual is
    the last block's resid_post, before ln_final), averaged over the batch.

    Columns: the cell's fields and `metric`; attrs base_metric, source_metric (unpatched runs), n_cells.
    """
    base_p, source_p = prepare(model, base), prepare(model, source)
    if base_p.tokens.shape != source_p.tokens.shape:
        raise ValueError(
            f"base and source have shapes {tuple(base_p.tokens.shape)} and {tuple(source_p.tokens.shape)}; "
            "activations can only be swapped between runs whose positions line up"
        )
    sites = list(sites)
    validate_cells(model, sites, base_p.n_pos)
    groups = [cell_sites(c) for c in sites]
    names = list(dict.fromkeys(s.hook_name for g in groups for s in g))
    _, cache = model.run_with_cache(source_p.tokens, names_filter=names, attention_mask=source_p.mask)

    def read(prompt: Prompt, hooks: list) -> float:
        with model.hooks(hooks):
            final = model(prompt.tokens, attention_mask=prompt.mask, stop_at_layer=model.cfg.n_layers)
        return float(readout(final[:, read_pos]).mean())

    def restore(group: tuple) -> list:
        def hook(act: Tensor, hook: HookPoint) -> Tensor:
            act = act.clone()
            for s in group:
                if s.hook_name == hook.name:
                    act[s.selector] = cache[s.hook_name][s.selector]
            return act

        return [(name, hook) for name in dict.fromkeys(s.hook_name for s in group)]

    df = pd.DataFrame([cell_row(c) for c in sites])
    df["metric"] = [read(base_p, restore(g)) for g in groups]
    df.attrs.update(base_metric=read(base_p, []), source_metric=read(source_p, []), n_cells=len(sites))
    return df
