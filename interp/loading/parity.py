"""`check_parity`: run Hugging Face beside interp on a probe batch and compare the logits."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from interp.errors import ParityError


def max_logit_diff(model: Any, reference: Any, atol: float, log_probs: bool = False) -> float:
    """Largest |logit difference| between interp and Hugging Face (eager attention) on a probe batch.

    With `log_probs`, log-softmaxes are compared (a centred unembedding shifts every logit equally).
    """
    from transformers import AutoModelForCausalLM

    if isinstance(reference, Path):
        hf = AutoModelForCausalLM.from_pretrained(
            str(reference), attn_implementation="eager", dtype=torch.float32, trust_remote_code=False
        )
    else:
        hf = copy.deepcopy(reference).float()  # never touch the caller's model, not even its train/eval flag
    hf = hf.to(model.W_E.device).eval()
    gen = torch.Generator().manual_seed(0)
    probe = torch.randint(0, model.cfg.d_vocab, (2, min(16, model.cfg.n_ctx)), generator=gen).to(
        model.W_E.device
    )
    with torch.no_grad():
        ours, theirs = model(probe).float(), hf(probe).logits.float()
        if log_probs:
            ours, theirs = ours.log_softmax(-1), theirs.log_softmax(-1)
        diff = (ours - theirs).abs().max().item()
    if diff > atol:
        raise ParityError(
            f"largest |logit difference| vs Hugging Face is {diff:.3g}, above the tolerance {atol:g}"
        )
    return diff
