"""MLP neurons as key-value memories: which neurons store a fact, and what they write.

- `knowledge_neurons`: integrated-gradients attribution of P(answer) to each neuron (Dai et al. 2022):
  the neuron activations of one layer, at the read position, are scaled by α = k/m (k = 1..m, m = 20),
  and attribution = activation × the mean gradient along that path.
- `top_neurons`: the most active neurons at a position.
- `neuron_vocab`: the value vector W_out[neuron] projected on the vocabulary through W_U (Geva et al. 2022).
- `neuron_effects`: the answer probability when neurons are suppressed (×0) or amplified (×2).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analysis.metrics import upcast
from interp.analysis.runner import (
    CellRun,
    Edit,
    Input,
    ReadPos,
    TokenLike,
    cached_run,
    edits_by_hook,
    prepare,
    prob_change,
    read_index,
    token_ids,
    unembed_at,
)
from interp.analysis.specs import Neuron, Spec, cell_row, cell_sites, validate_cells
from interp.hooks import HookPoint
from interp.transformer import HookedTransformer


def _layers(model: HookedTransformer, layers: Sequence[int] | None) -> list[int]:
    n = model.cfg.n_layers
    out = list(range(n)) if layers is None else list(layers)
    bad = [layer for layer in out if not 0 <= layer < n]
    if bad:
        raise ValueError(f"layers {bad} out of range; the model has {n} layers (0..{n - 1})")
    return out


def knowledge_neurons(
    model: HookedTransformer,
    prompt: Input,
    target: TokenLike,
    *,
    layers: Sequence[int] | None = None,
    steps: int = 20,
    read_pos: ReadPos = None,
    progress: bool | None = None,
) -> pd.DataFrame:
    """Integrated-gradients attribution of every neuron (at the read position), sorted high to low.

    Batched prompts are attributed separately and averaged (Dai et al. aggregate over paraphrases).
    One forward and one backward of `steps` × batch rows per layer, each starting at that layer.
    Columns: layer, neuron, activation (mean over the batch), attribution.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    base = prepare(model, prompt)
    layers = _layers(model, layers)
    index = read_index(base, read_pos)
    if not isinstance(index, Tensor):
        raise ValueError("knowledge neurons read one position per example; give read_pos as an int")
    ids = token_ids(model, target, base.batch)
    names = [f"blocks.{layer}.{h}" for layer in layers for h in ("hook_resid_pre", "mlp.hook_post")]
    run = cached_run(model, base, names, index)
    B, rows = base.batch, torch.arange(base.batch, device=index.device)
    alphas = torch.arange(1, steps + 1, device=index.device, dtype=run.logits.dtype) / steps
    all_rows = torch.arange(steps * B, device=index.device)
    frames = []
    for layer in tqdm(
        layers, desc="integrated gradients", disable=not (progress or (progress is None and len(layers) > 8))
    ):
        w = run.cache[f"blocks.{layer}.mlp.hook_post"][rows, index]  # [batch, d_mlp]
        scaled = (alphas[:, None, None] * w).requires_grad_()  # [step, batch, d_mlp], a leaf

        def put(act: Tensor, hook: HookPoint, scaled: Tensor = scaled) -> Tensor:
            act = act.clone()
            act[all_rows, index.repeat(steps)] = scaled.flatten(0, 1)
            return act

        x = run.cache[f"blocks.{layer}.hook_resid_pre"].repeat(steps, 1, 1)
        mask = None if base.mask is None else base.mask.repeat(steps, 1)
        with torch.enable_grad(), model.hooks([(f"blocks.{layer}.mlp.hook_post", put)]):
            resid = model(x, attention_mask=mask, start_at_layer=layer, stop_at_layer=model.cfg.n_layers)
            logits = unembed_at(model, resid, index.repeat(steps))
            p = upcast(logits).softmax(-1)[all_rows, ids.repeat(steps)]
            (grad,) = torch.autograd.grad(p.sum(), scaled)
        attribution = (w * grad.mean(0)).mean(0)  # Riemann sum of the path integral, then mean over prompts
        frames.append(
            pd.DataFrame(
                {
                    "layer": layer,
                    "neuron": range(model.cfg.d_mlp),
                    "activation": w.mean(0).tolist(),
                    "attribution": attribution.tolist(),
                }
            )
        )
    df = pd.concat(frames, ignore_index=True).sort_values("attribution", ascending=False, ignore_index=True)
    df.attrs.update(n_forward=1 + len(layers), n_backward=len(layers), target=ids.tolist())
    return df


def top_neurons(
    model: HookedTransformer,
    prompt: Input,
    k: int = 20,
    *,
    layers: Sequence[int] | None = None,
    read_pos: ReadPos = None,
) -> pd.DataFrame:
    """The k neurons with the highest activation at the read position (mean over the batch).

    Columns: layer, neuron, activation.
    """
    base = prepare(model, prompt)
    layers = _layers(model, layers)
    index = read_index(base, read_pos)
    if not isinstance(index, Tensor):
        raise ValueError("top_neurons reads one position per example; give read_pos as an int")
    run = cached_run(model, base, [f"blocks.{layer}.mlp.hook_post" for layer in layers], index)
    rows = torch.arange(base.batch, device=index.device)
    acts = torch.stack([run.cache[f"blocks.{layer}.mlp.hook_post"][rows, index].mean(0) for layer in layers])
    top = acts.flatten().topk(min(k, acts.numel()))
    d_mlp = model.cfg.d_mlp
    return pd.DataFrame(
        {
            "layer": [layers[i // d_mlp] for i in top.indices.tolist()],
            "neuron": [i % d_mlp for i in top.indices.tolist()],
            "activation": top.values.tolist(),
        }
    )


def neuron_vocab(model: HookedTransformer, layer: int, neuron: int, k: int = 10) -> pd.DataFrame:
    """Tokens the neuron's value vector promotes (top) and suppresses (bottom): W_out[neuron] · W_U.

    Columns: direction ("top"/"bottom"), rank, token_id, (token,) logit.
    """
    Neuron(layer, neuron).validate(model)
    with torch.no_grad():
        logits = model.blocks[layer].mlp.W_out[neuron] @ model.W_U  # [d_vocab]
    rows = []
    for direction, largest in (("top", True), ("bottom", False)):
        top = logits.topk(min(k, logits.numel()), largest=largest)
        for rank, (i, v) in enumerate(zip(top.indices.tolist(), top.values.tolist(), strict=True)):
            rows.append({"direction": direction, "rank": rank, "token_id": i, "logit": v})
    df = pd.DataFrame(rows)
    if model.tokenizer is not None:
        df.insert(3, "token", [model.tokenizer.decode([i]) for i in df["token_id"]])
    return df


def _scale(site: Spec, factor: float) -> Edit:
    def edit(rows: Tensor) -> None:
        rows[site.selector] = rows[site.selector] * factor

    return edit


def neuron_effects(
    model: HookedTransformer,
    prompt: Input,
    neurons: Sequence[Neuron | Sequence[Neuron]],
    target: TokenLike | None = None,
    *,
    factors: Sequence[float] = (0.0, 2.0),
    read_pos: ReadPos = None,
    max_rows: int = 256,
    progress: bool | None = None,
) -> pd.DataFrame:
    """P(target) with each neuron (or group of neurons) scaled by each factor: 0 suppresses, 2 amplifies.

    `target` defaults to the unedited run's top prediction. Columns: the site's fields, factor, p_base,
    p_new, relative_change = (p_new − p_base) / p_base. attrs: n_forward.
    """
    base = prepare(model, prompt)
    cells_in = list(neurons)
    validate_cells(model, cells_in, base.n_pos)
    if any(not isinstance(s, Neuron) for c in cells_in for s in cell_sites(c)):
        raise TypeError("neuron_effects takes Neuron specs (or groups of them)")
    index = read_index(base, read_pos)
    groups = [cell_sites(c) for c in cells_in]
    cells, rows = [], []
    for cell, g in zip(cells_in, groups, strict=True):
        for f in factors:
            edits = [(s.hook_name, _scale(s, f)) for s in g]
            cells.append(CellRun(min(s.layer for s in g), edits_by_hook(edits)))
            rows.append({**cell_row(cell), "factor": f})

    df, ids = prob_change(
        model, base, cells, rows, index, target, desc="neuron edits", max_rows=max_rows, progress=progress
    )
    df.attrs.update(target=ids.tolist())
    return df
