"""Helpers for the loader tests: a word-level tokenizer built in the test, and a copy of a saved folder."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import VOCAB


def word_tokenizer(bos: bool):
    """A fast tokenizer over the words w0..w93 (ids 2..95); with `bos`, "<s>" (id 1) is its BOS token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1} | {f"w{i}": i + 2 for i in range(VOCAB - 2)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    kwargs = {"bos_token": "<s>"} if bos else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", **kwargs)


def copy_folder(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, dirs_exist_ok=True)
    return dst
