"""to_tokens / to_str_tokens / to_string with an explicit BOS policy and padding."""

from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from interp import HookedTransformer, ModelConfig

BOS = "<|endoftext|>"


@pytest.fixture(scope="module")
def model():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=[BOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(["The capital of France is Paris."] * 50, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)
    cfg = ModelConfig(
        d_model=16, n_layers=1, n_heads=2, d_head=8, d_mlp=32, d_vocab=hf_tok.vocab_size, n_ctx=32
    )
    torch.manual_seed(0)
    return HookedTransformer(cfg, hf_tok)


def test_bos_policy(model):
    bos = model.tokenizer.bos_token_id
    with_bos = model.to_tokens("The capital")
    assert with_bos[0, 0].item() == bos
    without = model.to_tokens("The capital", prepend_bos=False)
    assert torch.equal(with_bos[:, 1:], without)
    model.default_prepend_bos = False
    try:
        assert torch.equal(model.to_tokens("The capital"), without)
    finally:
        model.default_prepend_bos = True


def test_str_tokens_and_string_round_trip(model):
    text = "The capital of France is Paris. 苹果 ✓"
    toks = model.to_tokens(text, prepend_bos=False)
    assert model.to_string(toks[0]) == text
    # Per-token strings join back to the text where no token splits a multi-byte character.
    ascii_text = "The capital of France is Paris."
    assert "".join(model.to_str_tokens(ascii_text, prepend_bos=False)) == ascii_text
    assert model.to_str_tokens("The capital")[0] == BOS
    assert model.to_string(torch.stack([toks[0], toks[0]])) == [text, text]


def test_padding_sides_and_mask(model):
    toks, mask = model.to_tokens(["The capital of France", "Paris"], return_attention_mask=True)
    n_short = int(mask[1].sum())
    assert mask[0].all() and mask[1, :n_short].all() and not mask[1, n_short:].any()
    left, lmask = model.to_tokens(
        ["The capital of France", "Paris"], padding_side="left", return_attention_mask=True
    )
    assert torch.equal(lmask[1].flip(0), mask[1])
    # A batch of texts runs with its mask: the short prompt's logits equal its own unpadded run.
    logits = model(["The capital of France", "Paris"])
    torch.testing.assert_close(logits[1, :n_short], model("Paris")[0], atol=1e-5, rtol=0)


def test_single_token_helper(model):
    assert model.to_single_token(" Paris") == model.tokenizer.encode(" Paris")[0]
    with pytest.raises(ValueError, match="expected exactly one"):
        model.to_single_token(" Paris France capital")


def test_loss_ignores_padding(model):
    short = model.loss("Paris is")
    batch = model.loss(["Paris is", "The capital of France is Paris"], per_token=False)
    alone = model.loss("The capital of France is Paris")
    n1, n2 = (
        model.to_tokens("Paris is").shape[1] - 1,
        model.to_tokens("The capital of France is Paris").shape[1] - 1,
    )
    torch.testing.assert_close(batch, (short * n1 + alone * n2) / (n1 + n2), atol=1e-5, rtol=0)
