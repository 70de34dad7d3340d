"""TransformerLens compatibility: TL 3 notebooks run on interp models with `interp.load(...)` swapped in.

The TL-named surface lives here, as mixins and views, rather than in transformer.py and cache.py:
`config_view` (`model.cfg`), `names` (the cache's shorthand), `cache` (TL's ActivationCache methods),
`tokens`, `weights` (stacked weights, QK/OV), `processing` (fold_ln, centring), `split_inputs`
(`hook_attn_in`, `hook_q_input`, ...), `run` (run_with_cache's TL options), `aliases` (TL model names).
"""
