"""tiny-facts-2 tokenizer: round trips in both languages, world words whole, answers as first tokens."""

from __future__ import annotations

import pytest
import tokenizers

from interp.embedded.tiny_facts_2.corpus import fact_examples, training_documents
from interp.embedded.tiny_facts_2.tokenizer import BOS, en_words, train_tokenizer, zh_lexicon

TEXTS = [
    "The capital of France is Paris.",
    "法国的首都是巴黎。",
    "乔丹·卡特，我们的老朋友，出生在埃及。",
    "科技展上人声鼎沸。后来她提到了苹果，指的是公司",
    "混合 mixed 文本 text, 東京 and 日本語のテキスト",
    "emoji: 🍎🐍🚀👩‍👩‍👧 and 生僻字 𠀋𡈽",
    "line one\nline two\r\n\ttabbed  double  space",
    f"special {BOS} inside text",
    "",
]


@pytest.fixture(scope="module")
def tok() -> tokenizers.Tokenizer:
    return train_tokenizer(training_documents(2000, seed=0))


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok: tokenizers.Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text


def test_world_words_are_single_tokens(tok: tokenizers.Tokenizer) -> None:
    assert [w for w in zh_lexicon() if len(tok.encode(w).ids) != 1] == []
    assert [w for w in en_words() if len(tok.encode(" " + w).ids) != 1] == []


def test_answer_is_the_first_token_after_the_prompt(tok: tokenizers.Tokenizer) -> None:
    # The eval scores encode(answer)[0]; in running text the answer must start a token, in both languages.
    for e in fact_examples(lang="zh")[::7] + fact_examples(lang="en")[::7]:
        prompt, full = tok.encode(e.prompt).ids, tok.encode(e.text).ids
        assert full[: len(prompt)] == prompt, e.text
        assert full[len(prompt)] == tok.encode(e.answer).ids[0], e.text
    pieces = [tok.id_to_token(i) for i in tok.encode("法国的首都是巴黎").ids]
    assert [tok.decode([tok.token_to_id(p)]) for p in pieces] == ["法国", "的", "首都", "是", "巴黎"]


def test_offsets_place_chinese_subjects(tok: tokenizers.Tokenizer) -> None:
    enc = tok.encode("说到乔丹·卡特，他出生在")
    assert [enc.offsets[i] for i in range(4)] == [(0, 1), (1, 2), (2, 4), (4, 5)]
