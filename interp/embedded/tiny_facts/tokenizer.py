"""Byte-level BPE tokenizer for tiny-facts (GPT-2 style), trained with HF `tokenizers`.

Why byte-level: any string (CJK, emoji, control characters) encodes and decodes exactly, with no unknown
token, so analyses can feed the model arbitrary text. Why the vocabulary boost: evaluations score only
the *first* answer token, so every answer (" Paris", " French", " euro", " doctor", " company") must be a
single token after a space. Plain BPE only guarantees that for frequent words, so `train_tokenizer`
appends each world word repeated `boost` times to the training stream; BPE then learns whole-word merges
for them. Real merges are used rather than HF "added tokens", which would match inside other words.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import tokenizers
import transformers
from tokenizers import decoders, models, pre_tokenizers, trainers

from interp.embedded.tiny_facts import world

BOS = "<|endoftext|>"  # used as BOS, EOS and PAD, GPT-2 style; never added automatically
MAX_VOCAB = 8192  # the model must stay small


def world_words() -> list[str]:
    """Every word the evals may score or that names an entity, sorted: the tokens to make whole."""
    words: set[str] = set()
    for c in world.COUNTRIES:
        words.update(" ".join(c).split())
    for p in world.PEOPLE:
        words.update(" ".join(p).split())
    words.update(world.PERSON_NAME_POOL)
    words.update(world.BINDING_NAMES)
    for word, senses in world.POLYSEMES.items():
        words.add(word)
        words.update(sense for _, sense in senses)
    words.update(world.JOBS)
    words.update(world.SPORTS)
    return sorted(words)


def _boost_texts(boost: int) -> Iterator[str]:
    for word in world_words():
        yield (" " + word) * boost


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096, boost: int = 200) -> tokenizers.Tokenizer:
    """Train byte-level BPE on `texts` plus the boosted world words; vocab is `vocab_size` at most.

    The result may be smaller than `vocab_size` when the corpus runs out of pairs (it is a closed world).
    No post-processor: callers prepend `BOS` themselves, as with GPT-2.
    """
    if not 257 <= vocab_size <= MAX_VOCAB:
        raise ValueError(f"vocab_size must be in [257, {MAX_VOCAB}], got {vocab_size}")
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes: nothing is ever unknown
        show_progress=False,
    )

    def stream() -> Iterator[str]:
        yield from texts
        if boost > 0:
            yield from _boost_texts(boost)

    tok.train_from_iterator(stream(), trainer=trainer)
    return tok


def _json_path(path: Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path / "tokenizer.json"


def save_tokenizer(tok: tokenizers.Tokenizer, path: Path) -> None:
    """Write `tokenizer.json` (to `path` if it ends in .json, else into the directory `path`).

    Into a directory it also writes a `tokenizer_config.json`, so `AutoTokenizer.from_pretrained(dir)`
    gets BOS/EOS/PAD right without going through `load_hf_tokenizer`.
    """
    file = _json_path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(file))
    if Path(path).suffix != ".json":
        config = {
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": BOS,
            "eos_token": BOS,
            "pad_token": BOS,
            "unk_token": None,
            "add_bos_token": False,
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1_000_000_000,
        }
        (file.parent / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_hf_tokenizer(path: Path) -> transformers.PreTrainedTokenizerFast:
    """Load a saved tokenizer as a `PreTrainedTokenizerFast` with bos/eos/pad = `BOS`, no auto-BOS."""
    return transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(_json_path(path)),
        bos_token=BOS,
        eos_token=BOS,
        pad_token=BOS,
        clean_up_tokenization_spaces=False,
    )
