"""Analyses over `HookedTransformer`: which component does what.

Interventions take typed site specs (`Head`, `Attn`, `MLP`, `Neuron`, `Resid`); results are tidy pandas
DataFrames with one row per site, and sweeps run batched (see `runner`).
"""

from interp.analysis.ablation import AblationRun, ablate, ablation_sweep, run_ablated
from interp.analysis.attribution import attribution_patch, correlation
from interp.analysis.context_flow import ContextFlow, context_flow, flow_graph, flow_summary, importance
from interp.analysis.generation import generate, steer, steering_vector
from interp.analysis.knockout import Knockout, knockout, knockout_sweep
from interp.analysis.lens import direct_logit_attribution, logit_lens
from interp.analysis.metrics import kl_div, log_prob, logit_diff, normalized, normalized_recovery, prob
from interp.analysis.neurons import knowledge_neurons, neuron_effects, neuron_vocab, top_neurons
from interp.analysis.patching import denoise, noise, patch
from interp.analysis.specs import MLP, Attn, Head, Neuron, Resid
from interp.analysis.tracing import causal_trace, subject_span

__all__ = [
    "MLP",
    "AblationRun",
    "Attn",
    "ContextFlow",
    "Head",
    "Knockout",
    "Neuron",
    "Resid",
    "ablate",
    "ablation_sweep",
    "attribution_patch",
    "causal_trace",
    "context_flow",
    "correlation",
    "denoise",
    "direct_logit_attribution",
    "flow_graph",
    "flow_summary",
    "generate",
    "importance",
    "kl_div",
    "knockout",
    "knockout_sweep",
    "knowledge_neurons",
    "log_prob",
    "logit_diff",
    "logit_lens",
    "neuron_effects",
    "neuron_vocab",
    "noise",
    "normalized",
    "normalized_recovery",
    "patch",
    "prob",
    "run_ablated",
    "steer",
    "steering_vector",
    "subject_span",
    "top_neurons",
]
