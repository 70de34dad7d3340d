"""Answer scoring: a padded batch scores each prompt as it would be scored alone; hooks apply."""

from __future__ import annotations

import pytest
import torch
from analysis_helpers import gpt2_like

from interp.analysis import MLP, run_ablated
from interp.analysis.scoring import answer_token, score_answers

PROMPTS = ["The capital of France is", "I love", "The city of Rome is in", "I hate you ."]
ANSWERS = [" Paris", " you", " Italy Rome", " I"]


@torch.no_grad()
def test_batch_scores_equal_prompts_scored_alone():
    model = gpt2_like()
    scored = score_answers(model, PROMPTS, ANSWERS)
    alone = [int(model(p)[0, -1].argmax()) for p in PROMPTS]
    assert scored.predicted.tolist() == alone
    assert scored.answers.tolist() == [model.to_single_token(" " + a.split()[0]) for a in ANSWERS]
    assert scored.correct.tolist() == [a == b for a, b in zip(alone, scored.answers.tolist(), strict=True)]
    assert scored.lengths.tolist() == [len(model.to_str_tokens(p)) for p in PROMPTS]


@torch.no_grad()
def test_hooks_score_the_edited_model():
    model = gpt2_like()
    zero = [(MLP(1).hook_name, lambda act, hook: torch.zeros_like(act))]
    scored = score_answers(model, PROMPTS, ANSWERS, hooks=zero)
    expected = [int(run_ablated(model, p, MLP(1)).logits[0, -1].argmax()) for p in PROMPTS]
    assert scored.predicted.tolist() == expected
    assert scored.predicted.tolist() != score_answers(model, PROMPTS, ANSWERS).predicted.tolist()


def test_answer_token_is_the_first_token_and_bad_input_is_clear():
    model = gpt2_like()
    assert answer_token(model, " Italy Rome") == model.to_single_token(" Italy")
    with pytest.raises(ValueError, match="encodes to no tokens"):
        answer_token(model, "")
    with pytest.raises(ValueError, match="4 prompts but 3 answers"):
        score_answers(model, PROMPTS, ANSWERS[:3])
