"""tiny-facts-2: a bilingual (English + Chinese) synthetic world, its corpus, tokenizer, training and card.

Kept import-light on purpose: import `interp.embedded.tiny_facts_2.corpus` or `.tokenizer` directly.
"""
