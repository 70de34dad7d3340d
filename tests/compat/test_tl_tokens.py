"""TL 3's token helpers, checked against the tokenizer and TL's semantics."""

from __future__ import annotations

import pytest
import torch
from compat_helpers import WORDS, gpt2


def test_to_str_tokens_on_text_batches_and_lists():
    m = gpt2()
    assert m.to_str_tokens(" John and Mary", prepend_bos=False) == [" John", " and", " Mary"]
    batch = m.to_tokens([" John went", " Mary went"], prepend_bos=False)
    assert m.to_str_tokens(batch) == [[" John", " went"], [" Mary", " went"]]
    assert m.to_str_tokens([" John", " Mary and"], prepend_bos=False) == [[" John"], [" Mary", " and"]]
    assert m.to_str_tokens(batch[:1]) == [" John", " went"]  # a batch of one is squeezed, as TL
    assert m.to_single_str_token(WORDS.index("ĠMary")) == " Mary"


def test_get_token_position():
    m = gpt2()
    prompt = "When John and Mary went to the store, John gave a bag to"
    assert m.get_token_position(" John", prompt) == 2  # BOS is position 0
    assert m.get_token_position(" John", prompt, mode="last") == 10
    assert m.get_token_position(" John", prompt, prepend_bos=False) == 1
    assert m.get_token_position(m.to_single_token(" Mary"), m.to_tokens(prompt)) == 4
    with pytest.raises(ValueError, match="does not occur"):
        m.get_token_position(" Paris", prompt)
    with pytest.raises(ValueError, match="'first' or 'last'"):
        m.get_token_position(" John", prompt, mode="middle")


def test_tokens_to_residual_directions_on_a_list():
    m = gpt2()
    dirs = m.tokens_to_residual_directions([" John", " Mary"])
    assert dirs.shape == (2, 32)
    torch.testing.assert_close(dirs[1], m.tokens_to_residual_directions(" Mary"))


def test_loss_fn_and_forward_loss_per_token():
    m = gpt2()
    tokens = m.to_tokens("When John and Mary went to the store")
    logits = m(tokens)
    per_token = m.loss_fn(logits, tokens, per_token=True)
    # Hand-written: -log p(next token).
    want = -logits.log_softmax(-1)[0, :-1].gather(-1, tokens[0, 1:, None])[:, 0]
    torch.testing.assert_close(per_token[0], want)
    torch.testing.assert_close(m(tokens, return_type="loss", loss_per_token=True), per_token)
    torch.testing.assert_close(m.loss_fn(logits, tokens), want.mean())
    with pytest.raises(ValueError, match=r"logits \[batch, pos, d_vocab\]"):
        m.loss_fn(logits[:, -1], tokens)


def test_forward_padding_side():
    m = gpt2()
    prompts = [" John went", " Mary went to the store"]
    left = m(prompts, padding_side="left")
    right = m(prompts, padding_side="right")
    torch.testing.assert_close(left[0, -1], right[0, 2], atol=1e-5, rtol=0)  # same last real token
