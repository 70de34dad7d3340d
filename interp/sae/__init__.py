"""Sparse dictionaries: SAEs, transcoders and skip transcoders on any hook point.

    sae = interp.sae.load("tiny-facts/resid-0")            # shipped; or an SAELens folder, a params.npz
    with model.saes([sae], use_error_term=True):
        logits, cache = model.run_with_cache(prompt)       # cache[f"{sae.cfg.write_hook}.hook_sae_acts_post"]

Formats are read without importing sae-lens (`formats.py`); `train.py` trains small TopK / ReLU dictionaries
from an activation store; `features.py` builds feature tables; `evaluate.py` scores latents against the
embedded world's ground truth.
"""

from interp.sae.config import SAEConfig
from interp.sae.formats import load, save, shipped
from interp.sae.sae import SAE
from interp.sae.splice import splice
from interp.sae.store import ActivationStore, InMemoryStore, collect_activations
from interp.sae.train import TrainReport, train

__all__ = [
    "SAE",
    "ActivationStore",
    "InMemoryStore",
    "Latent",
    "SAEConfig",
    "TrainReport",
    "collect_activations",
    "load",
    "save",
    "shipped",
    "splice",
    "train",
]


def __getattr__(name: str) -> object:
    # Latent is a site of interp.analysis, which imports the model class, which mixes in SAEHost from this
    # package: loaded on first use, so importing the model does not import the analyses.
    if name == "Latent":
        from interp.sae.latent import Latent

        return Latent
    raise AttributeError(f"module 'interp.sae' has no attribute {name!r}")
