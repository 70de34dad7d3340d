"""Splicing dictionaries into a model: the host activation is replaced by the reconstruction.

    with splice(model, [sae], use_error_term=True):   # also: model.saes([...]), model.run_with_saes(...)
        logits, cache = model.run_with_cache(prompt)   # cache["blocks.1.hook_resid_post.hook_sae_acts_post"]

An SAE reads and writes its `hook_name`; a transcoder reads `hook_name` and writes `hook_name_out` (e.g.
`blocks.1.ln2.hook_normalized` → `blocks.1.hook_mlp_out`), replacing the MLP's output by its own. With
`use_error_term` the output is reconstruction + (true activation − reconstruction), so logits are exactly the
unspliced ones while every latent stays editable: editing a latent moves the output by its decoder row.

The SAE's hook points are a context-local overlay (`HookedRootModule.hook_overlay`): they exist only inside
the block, for this thread or task, and are never submodules that another thread's forward would run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import Tensor

from interp.hooks import HookedRootModule, HookPoint, HookSpec
from interp.sae.sae import SAE

SAE_POINTS = ("hook_sae_input", "hook_sae_acts_pre", "hook_sae_acts_post", "hook_sae_recons", "hook_sae_error", "hook_sae_output")  # fmt: skip
# A transcoder's input, read at its input hook and used at its output hook later in the same forward.
_PENDING: ContextVar[dict[int, Tensor] | None] = ContextVar("interp_transcoder_inputs", default=None)


def check_compatible(model: Any, sae: SAE) -> None:
    """The hooks exist, the widths fit, and the model is processed as the SAE was trained on (or raise)."""
    points = model.named_hook_points()
    for name in dict.fromkeys((sae.cfg.hook_name, sae.cfg.write_hook)):
        if name not in points:
            raise KeyError(
                f"{sae.cfg.architecture} SAE attaches at {name!r}, which this model has no hook for"
            )
    wanted = {k: v for k, v in sae.cfg.model_from_pretrained_kwargs.items() if k in PROCESSING_KWARGS}
    have = getattr(model, "processing", {}) or {}
    wrong = {k: v for k, v in wanted.items() if bool(have.get(k, False)) != bool(v)}
    if wrong:
        raise ValueError(
            f"this SAE was trained on a model loaded with {wanted}; this model has {dict(have) or 'no processing'}. "
            f"Load it with interp.load(..., {', '.join(f'{k}={v}' for k, v in wanted.items())}), or its "
            "reconstructions would be silently off (and the error term would hide it in the logits)"
        )


# TransformerLens weight-processing switches an SAE's `model_from_pretrained_kwargs` may name.
PROCESSING_KWARGS = ("fold_ln", "center_writing_weights", "center_unembed", "fold_value_biases")


def sae_hooks(sae: SAE, use_error_term: bool) -> list[HookSpec]:
    """The forward hooks that splice one dictionary: one hook for an SAE, a read and a write for a transcoder."""
    if not sae.cfg.is_transcoder:

        def replace(act: Tensor, hook: HookPoint) -> Tensor:
            _check_width(sae, act, hook)
            out = sae(sae.flatten(act), use_error_term=use_error_term)
            return sae.unflatten(out.to(act.dtype), act)

        return [(sae.cfg.hook_name, replace)]

    def read(act: Tensor, hook: HookPoint) -> None:
        _check_width(sae, act, hook)
        pending = _PENDING.get()
        if pending is not None:
            pending[id(sae)] = act

    def write(act: Tensor, hook: HookPoint) -> Tensor:
        pending = _PENDING.get()
        x = None if pending is None else pending.pop(id(sae), None)
        if x is None:
            raise RuntimeError(
                f"transcoder {sae.cfg.hook_name} -> {sae.cfg.write_hook}: the output hook ran before the input "
                "hook in this forward (a run that starts between them, e.g. start_at_layer, cannot splice it)"
            )
        out = sae(sae.flatten(x))
        if use_error_term:
            with torch.no_grad():
                clean = sae._reconstruct(sae.flatten(x), hooked=False)
            out = out + sae.hook_sae_error((act - clean).to(out.dtype))
        return sae.hook_sae_output(out).to(act.dtype)

    # SAE.forward has already run hook_sae_output for an SAE; a transcoder runs it here, after the error term.
    return [(sae.cfg.hook_name, read), (sae.cfg.write_hook, write)]


def _check_width(sae: SAE, act: Tensor, hook: HookPoint) -> None:
    width = act.shape[-2] * act.shape[-1] if sae.cfg.reshape_activations == "hook_z" else act.shape[-1]
    if width != sae.cfg.d_in:
        raise ValueError(f"SAE with d_in={sae.cfg.d_in} cannot read {hook.name}, whose width is {width}")


def _overlay_points(sae: SAE) -> dict[str, HookPoint]:
    """The SAE's points under the hook it writes, as SAELens's HookedSAETransformer names them: a transcoder's
    latents are `blocks.1.hook_mlp_out.hook_sae_acts_post` (they are computed when its output is due)."""
    points = {}
    for local in SAE_POINTS:
        point = getattr(sae, local)
        point.name = f"{sae.cfg.write_hook}.{local}"
        points[point.name] = point
    return points


@contextmanager
def splice(model: HookedRootModule, saes: Sequence[SAE], use_error_term: bool = False) -> Iterator[Any]:
    """Replace each dictionary's host activation by its reconstruction for the forwards inside the block."""
    saes = list(saes)
    hooked = [s.cfg.write_hook for s in saes]
    if len(set(hooked)) != len(hooked):
        raise ValueError(f"two dictionaries write the same hook: {hooked}")
    for sae in saes:
        check_compatible(model, sae)
    points: dict[str, HookPoint] = {}
    for sae in saes:
        points.update(_overlay_points(sae))
    with ExitStack() as stack:
        stack.enter_context(model.hook_overlay(points))
        token = _PENDING.set({})
        stack.callback(_PENDING.reset, token)
        stack.enter_context(model.hooks([h for sae in saes for h in sae_hooks(sae, use_error_term)]))
        yield model
