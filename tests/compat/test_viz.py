"""circuitsvis attention views from `cache["pattern", l]` and `to_str_tokens` (assert on the HTML: JS is on a CDN)."""

from __future__ import annotations

import json
import re

import circuitsvis as cv
import pytest
import torch
from compat_helpers import gpt2

from interp.compat.viz import attention_heads

PROMPT = "When John and Mary went to the store"


def _props(html: str) -> dict:
    return json.loads(re.search(r"render\(\s*\"[^\"]+\",\s*\w+,\s*(\{.*\})\s*\)", str(html), re.S).group(1))


def test_tl_cell_runs_unchanged_and_the_html_holds_the_pattern():
    model = gpt2()
    tokens = model.to_tokens(PROMPT)
    _, cache = model.run_with_cache(tokens, remove_batch_dim=True)
    # The TL notebook cell, verbatim:
    html = cv.attention.attention_patterns(tokens=model.to_str_tokens(PROMPT), attention=cache["pattern", 0])
    props = _props(html)
    assert props["tokens"] == model.to_str_tokens(PROMPT)
    torch.testing.assert_close(torch.tensor(props["attention"]), cache["pattern", 0], atol=1e-6, rtol=0)


def test_attention_heads_helper():
    model = gpt2()
    tokens = model.to_tokens([PROMPT, PROMPT + " and"])
    _, cache = model.run_with_cache(tokens)
    props = _props(attention_heads(model, cache, layer=1, batch=1, tokens=tokens[1]))
    assert props["tokens"][-1] == " and"
    torch.testing.assert_close(torch.tensor(props["attention"]), cache["pattern", 1][1], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="pass tokens"):
        attention_heads(model, cache, layer=1)
