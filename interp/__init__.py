"""interp: see how a transformer predicts the next token.

import interp
model = interp.load()                      # the embedded tiny-facts-2 model
logits, cache = model.run_with_cache("The capital of France is")
"""

__version__ = "0.1.0"  # the package version (pyproject reads it from here)

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
    "ShardStore",
    "act_name",
    "collect",
    "load",
    "param_breakdown",
    "save",
]


def __getattr__(name: str) -> object:
    # interp.collect and interp.ShardStore live in interp.scale, which imports pandas: loaded on first use,
    # so `import interp` stays as light as it was.
    if name in ("collect", "ShardStore"):
        import interp.scale

        return getattr(interp.scale, name)
    raise AttributeError(f"module 'interp' has no attribute {name!r}")
