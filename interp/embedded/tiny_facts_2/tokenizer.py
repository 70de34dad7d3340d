"""Byte-level BPE for tiny-facts-2, trained on both languages, with the world's Chinese words kept whole.

Why a word split before BPE: GPT-2's pre-tokenizer keeps a run of CJK characters in one piece
("法国的首都是巴黎" has no spaces), so BPE learns merges across word boundaries (in a closed world, whole
sentences become one token) and "巴黎" is then not the first token of the answer after "法国的首都是".
A `Split` first isolates every word of the world's Chinese lexicon (entity names, answers, binding
names and a few common template words; longest word first), then every other CJK character on its own.
So world words are whole tokens, and any other Chinese text is read character by character, which is
what lets a never-trained phrasing be read from characters the corpus uses. Each lexicon word and each
English world word is also boosted, as in tiny-facts, so it ends up as one token. Everything stays
byte-level: any text round-trips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

import tokenizers
from tokenizers import decoders, models, pre_tokenizers, trainers

from interp.embedded.tiny_facts.tokenizer import BOS, load_hf_tokenizer, save_tokenizer
from interp.embedded.tiny_facts_2 import world

__all__ = ["BOS", "load_hf_tokenizer", "save_tokenizer", "train_tokenizer", "zh_lexicon", "en_words"]

MAX_VOCAB = 8192
# Common words of the Chinese templates kept whole too ("common Chinese words are real tokens").
ZH_COMMON_WORDS: tuple[str, ...] = (
    "首都", "城市", "官方", "语言", "主要", "出生", "国家", "职业", "工作", "运动", "喜欢", "周末", "位于",
    "大洲", "人们", "来自", "家乡", "祖国", "一名", "指的是", "后来", "然后", "大家", "朋友", "据新闻报道",
)  # fmt: skip
CJK = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"  # CJK unified ideographs (+ ext. A, compatibility)


def zh_lexicon() -> list[str]:
    """The world's Chinese words (names, places, answers, polysemes, senses), longest first."""
    words: set[str] = {"·", *ZH_COMMON_WORDS}
    for c in world.COUNTRIES:
        words.update((c.zh_name, c.zh_capital, c.zh_language, c.zh_continent))
    words.update(zh for _, zh in world.FIRST_NAMES + world.LAST_NAMES + world.JOBS + world.SPORTS)
    words.update(world.ZH_BINDING_NAMES)
    for word, senses in world.ZH_POLYSEMES.items():
        words.add(word)
        words.update(sense for _, sense in senses)
    return sorted(words, key=lambda w: (-len(w), w))


def en_words() -> list[str]:
    """English words the evals score or that name an entity."""
    from interp.embedded.tiny_facts import world as tf_world

    words: set[str] = set()
    for c in world.COUNTRIES:
        words.update(" ".join((c.name, c.capital, c.language, c.continent)).split())
    words.update(en for en, _ in world.FIRST_NAMES + world.LAST_NAMES + world.JOBS + world.SPORTS)
    words.update(world.BINDING_NAMES)
    for word, senses in tf_world.POLYSEMES.items():
        words.add(word)
        words.update(sense for _, sense in senses)
    return sorted(words)


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    pattern = "|".join([*(re.escape(w) for w in zh_lexicon()), CJK])
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(tokenizers.Regex(pattern), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def _boost_texts(boost: int) -> Iterator[str]:
    for word in en_words():
        yield (" " + word) * boost
    for word in zh_lexicon():
        yield word * boost


def train_tokenizer(texts: Iterable[str], vocab_size: int = 6000, boost: int = 200) -> tokenizers.Tokenizer:
    """Train the bilingual byte-level BPE on `texts` plus the boosted world words."""
    if not 257 <= vocab_size <= MAX_VOCAB:
        raise ValueError(f"vocab_size must be in [257, {MAX_VOCAB}], got {vocab_size}")
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer()
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=[BOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def stream() -> Iterator[str]:
        yield from texts
        if boost > 0:
            yield from _boost_texts(boost)

    tok.train_from_iterator(stream(), trainer=trainer)
    return tok
