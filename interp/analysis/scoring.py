"""Answer scoring: is the model's top-1 next token, at each prompt's last real token, the answer's first token?

The one rule every figure about a model's answers uses (the embedded model's card and tests, the
experiments' fact and prompt selection): prompts are tokenized as a right-padded batch, the logits are read
at each prompt's last real token, and only the answer's first token is scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from interp.transformer import HookedTransformer

Hook = tuple[str, Callable]


def answer_token(model: HookedTransformer, answer: str) -> int:
    """The id the model must predict for an answer: its first token (" Paris" → the id of " Paris")."""
    ids = model.tokenizer.encode(answer, add_special_tokens=False)
    if not ids:
        raise ValueError(f"answer {answer!r} encodes to no tokens")
    return ids[0]


@dataclass(frozen=True)
class Scored:
    """A scored batch: its tokens, and the top-1 prediction and answer token of each prompt."""

    tokens: Tensor  # [batch, pos], right padded
    mask: Tensor  # [batch, pos], 1 = real token
    predicted: Tensor  # [batch]: the top-1 token at each prompt's last real token
    answers: Tensor  # [batch]: each answer's first token

    @property
    def lengths(self) -> Tensor:
        return self.mask.sum(-1)

    @property
    def correct(self) -> Tensor:
        return self.predicted == self.answers


@torch.no_grad()
def score_answers(
    model: HookedTransformer,
    prompts: Sequence[str],
    answers: Sequence[str],
    *,
    prepend_bos: bool | None = None,
    hooks: Sequence[Hook] = (),
) -> Scored:
    """Score `answers` on one right-padded batch of `prompts`, with optional forward hooks (e.g. ablations)."""
    if len(prompts) != len(answers):
        raise ValueError(f"got {len(prompts)} prompts but {len(answers)} answers")
    if not prompts:
        raise ValueError("no prompts to score")
    tokens, mask = model.to_tokens(
        list(prompts), prepend_bos=prepend_bos, padding_side="right", return_attention_mask=True
    )
    with model.hooks(list(hooks)):
        logits = model(tokens, attention_mask=mask)
    last = mask.sum(-1) - 1  # right padding: the last real token is at length - 1
    predicted = logits[torch.arange(len(prompts)), last].argmax(-1)
    target = torch.tensor([answer_token(model, a) for a in answers], device=predicted.device)
    return Scored(tokens, mask, predicted, target)
