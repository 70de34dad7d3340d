"""interp: see how a transformer predicts the next token.

import interp
model = interp.load()                      # the embedded tiny-facts model
logits, cache = model.run_with_cache("The capital of France is")
"""

from interp.cache import ActivationCache, act_name
from interp.config import ModelConfig
from interp.errors import LoadError, ParityError
from interp.hooks import HookPoint
from interp.loading import load
from interp.params import param_breakdown
from interp.storage import save
from interp.transformer import HookedTransformer

__all__ = [
    "ActivationCache",
    "HookPoint",
    "HookedTransformer",
    "LoadError",
    "ModelConfig",
    "ParityError",
    "act_name",
    "load",
    "param_breakdown",
    "save",
]
