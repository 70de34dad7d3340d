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

from interp.analysis.edits import At, scale
from interp.analysis.engine import (
    Input,
    Logits,
    ReadPos,
    TokenLike,
    forward,
    prepare,
    prob_change,
    read_index,
    reference_runs,
    token_ids,
)
from interp.analysis.metrics import upcast
from interp.analysis.specs import (
    MLPPost,
    Neuron,
    ResidPre,
    cell_row,
    cell_sites,
    check_layers,
    validate_cells,
)
from interp.transformer import HookedTransformer


def knowledge_neurons(
    model: HookedTransformer,
    prompt: Input,
    answer: TokenLike | None = None,
    *,
    layers: Sequence[int] | None = None,
    steps: int = 20,
    read_pos: ReadPos = None,
    progress: bool | None = None,
    target: TokenLike | None = None,
) -> pd.DataFrame:
    """Integrated-gradients attribution of P(answer) to every neuron (at the read position), high to low.

    Batched prompts are attributed separately and averaged (Dai et al. aggregate over paraphrases).
    One forward and one backward of `steps` × batch rows per layer, each starting at that layer.
    Columns: layer, neuron, activation (mean over the batch), attribution. Deprecated: `target=`.
    """
    answer = answer if target is None else target
    if answer is None:
        raise ValueError("knowledge neurons need the answer token (answer=...)")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    base = prepare(model, prompt)
    layers = check_layers(model, layers)
    index = read_index(base, read_pos)
    if not isinstance(index, Tensor):
        raise ValueError("knowledge neurons read one position per example; give read_pos as an int")
    ids = token_ids(model, answer, base.batch)
    names = [site.hook_name for layer in layers for site in (ResidPre(layer), MLPPost(layer))]
    (run,) = reference_runs(model, [base], names, Logits(read_pos))
    B, rows = base.batch, torch.arange(base.batch, device=index.device)
    alphas = torch.arange(1, steps + 1, device=index.device, dtype=run.acts[names[0]].dtype) / steps
    all_rows = torch.arange(steps * B, device=index.device)
    frames = []
    show = progress or (progress is None and len(layers) > 8)
    for layer in tqdm(layers, desc="integrated gradients", disable=not show):
        site = MLPPost(layer)
        w = run.acts[site.hook_name][rows, index]  # [batch, d_mlp]
        scaled = (alphas[:, None, None] * w).requires_grad_()  # [step, batch, d_mlp], a leaf

        def put(
            act: Tensor, at: At, scaled: Tensor = scaled
        ) -> None:  # the path's point, at the read position
            act[all_rows, index.repeat(steps)] = scaled.flatten(0, 1)

        logits, _ = forward(
            model,
            run.acts[ResidPre(layer).hook_name].repeat(steps, 1, 1),
            base.repeat(steps),
            Logits(read_pos),
            start=layer,
            plan={site.hook_name: [(slice(None), site, put)]},
            grad=True,
        )
        with torch.enable_grad():
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
    layers = check_layers(model, layers)
    index = read_index(base, read_pos)
    if not isinstance(index, Tensor):
        raise ValueError("top_neurons reads one position per example; give read_pos as an int")
    names = [MLPPost(layer).hook_name for layer in layers]
    (run,) = reference_runs(model, [base], names, Logits(read_pos))
    rows = torch.arange(base.batch, device=index.device)
    acts = torch.stack([run.acts[name][rows, index].mean(0) for name in names])
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
    with torch.no_grad(), model.weights_of(model.blocks[layer]):  # an offloaded block's, fetched
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


def neuron_effects(
    model: HookedTransformer,
    prompt: Input,
    neurons: Sequence[Neuron | Sequence[Neuron]],
    answer: TokenLike | None = None,
    *,
    factors: Sequence[float] = (0.0, 2.0),
    read_pos: ReadPos = None,
    max_rows: int = 256,
    progress: bool | None = None,
    target: TokenLike | None = None,
) -> pd.DataFrame:
    """P(answer) with each neuron (or group of neurons) scaled by each factor: 0 suppresses, 2 amplifies.

    `answer` defaults to the unedited run's top prediction at `read_pos`. Columns: the site's fields,
    factor, p_base, p_new, relative_change = (p_new − p_base) / p_base. attrs: n_forward, target (the
    answer ids). Deprecated: `target=` for `answer=`.
    """
    base = prepare(model, prompt)
    cells_in = list(neurons)
    validate_cells(model, cells_in, base.n_pos)
    if any(not isinstance(s, Neuron) for c in cells_in for s in cell_sites(c)):
        raise TypeError("neuron_effects takes Neuron specs (or groups of them)")
    cells, rows = [], []
    for cell in cells_in:
        for f in factors:
            cells.append([(s, scale(f)) for s in cell_sites(cell)])
            rows.append({**cell_row(cell), "factor": f})
    run, ids, p_base = prob_change(
        model,
        base,
        cells,
        answer if target is None else target,
        read_pos,
        desc="neuron edits",
        max_rows=max_rows,
        progress=progress,
    )
    df = pd.DataFrame(rows)
    df["p_base"] = float(p_base.mean())
    df["p_new"] = [float(v[0]) for v in run.values]
    df["relative_change"] = [float(v[1]) for v in run.values]
    df.attrs.update(n_forward=run.n_forward, target=ids.tolist())
    return df
