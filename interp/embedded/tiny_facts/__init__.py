"""tiny-facts: a synthetic corpus with known facts, its evaluation sets and its byte-level BPE tokenizer.

Kept import-light on purpose: import `interp.embedded.tiny_facts.corpus` or `.tokenizer` directly.
"""
