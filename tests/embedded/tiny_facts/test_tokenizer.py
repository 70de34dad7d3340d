"""tiny-facts tokenizer: byte-level round trip, single-token answers, HF loading, short documents."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
import tokenizers
import transformers

from interp.embedded.tiny_facts.corpus import (
    binding_examples,
    disambiguation_examples,
    fact_examples,
    training_documents,
)
from interp.embedded.tiny_facts.tokenizer import BOS, load_hf_tokenizer, save_tokenizer, train_tokenizer

TEXTS = [
    "The capital of France is Paris.",
    "苹果和香蕉 are fruits; 東京 is in 日本.",
    "emoji: 🍎🐍🚀👩‍👩‍👧 and flags 🇫🇷",
    "Accents: café, naïve, Zürich, São Paulo, Ångström, Łódź",
    "line one\nline two\r\n\ttabbed  double  space   \x00 nul",
    " leading space and trailing space ",
    "Ελληνικά, русский, עברית, العربية, हिन्दी",
    f"special {BOS} inside text",
    "",
]


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return training_documents(3000, seed=0)


@pytest.fixture(scope="module")
def tok(docs: list[str]) -> tokenizers.Tokenizer:
    return train_tokenizer(docs)


def test_vocab_and_determinism(tok: tokenizers.Tokenizer, docs: list[str]) -> None:
    assert 257 < tok.get_vocab_size() <= 4096
    assert tok.token_to_id(BOS) == 0
    assert train_tokenizer(docs).to_str() == tok.to_str()
    with pytest.raises(ValueError):
        train_tokenizer(docs, vocab_size=10_000)


@pytest.mark.parametrize("text", TEXTS)
def test_round_trip(tok: tokenizers.Tokenizer, text: str) -> None:
    ids = tok.encode(text).ids
    assert tok.decode(ids, skip_special_tokens=False) == text


def _answers() -> dict[str, set[str]]:
    by_relation: dict[str, set[str]] = defaultdict(set)
    for e in fact_examples():
        by_relation[e.relation].add(e.answer)
    for e in disambiguation_examples():
        by_relation["sense"].add(e.answer)
    for e in binding_examples(2000, 2, seed=0):
        by_relation[f"binding_{e.relation}"].add(e.answer)
    return by_relation


def test_answers_first_token_single_and_unique(tok: tokenizers.Tokenizer) -> None:
    answers = _answers()
    assert set(answers) >= {"capital", "language", "currency", "continent", "birth_country", "job", "sport"}
    for relation, values in answers.items():
        first_ids = {}
        for answer in values:
            first_word = " " + answer.split()[0]
            ids = tok.encode(first_word).ids
            assert len(ids) == 1, (relation, answer, tok.encode(first_word).tokens)
            assert tok.encode(answer).ids[0] == ids[0]
            first_ids.setdefault(ids[0], answer)
            assert first_ids[ids[0]] == answer, (relation, answer, first_ids[ids[0]])
    assert len(tok.encode(" Kuala Lumpur").ids) >= 2  # multi-word answers really are multi-token


def test_documents_fit_context(tok: tokenizers.Tokenizer, docs: list[str]) -> None:
    lengths = [len(tok.encode(d).ids) for d in docs]
    assert max(lengths) <= 60  # + BOS fits n_ctx = 64


@pytest.mark.parametrize("as_file", [False, True])
def test_hf_tokenizer(tok: tokenizers.Tokenizer, tmp_path: Path, as_file: bool) -> None:
    path = tmp_path / "tok.json" if as_file else tmp_path / "tok"
    save_tokenizer(tok, path)
    assert (path if as_file else path / "tokenizer.json").is_file()
    hf = load_hf_tokenizer(path)
    assert isinstance(hf, transformers.PreTrainedTokenizerFast)
    assert hf.bos_token == hf.eos_token == hf.pad_token == BOS
    assert hf.bos_token_id == hf.pad_token_id == tok.token_to_id(BOS)
    assert hf.encode("The capital of France is Paris") == tok.encode("The capital of France is Paris").ids
    for text in TEXTS:
        assert hf.decode(hf.encode(text)) == text
    if not as_file:
        auto = transformers.AutoTokenizer.from_pretrained(str(path))
        assert auto.bos_token == auto.pad_token == BOS
        assert auto.encode("Ana speaks French") == tok.encode("Ana speaks French").ids
