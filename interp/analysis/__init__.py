"""Analyses over `HookedTransformer`: which component does what.

Sites (`interp.analysis.specs`) are the only way to name an activation. Positions are absolute token
positions (negative counts from the end of the sequence); `pos=None` is every position.

    Embed(pos), PosEmbed(pos)                  the token / learned position embeddings
    ResidPre(l, pos), ResidMid(l, pos),        the residual entering block l, after its attention,
    ResidPost(l, pos), ResidFinal(pos)         after block l, after the last block
    Attn(l, pos), MLP(l, pos)                  attn_out, mlp_out ("attn" is always the attention output)
    MLPPost(l, pos), Neuron(l, index, pos)     the MLP's hidden activations, one of its neurons
    MLPIn(l, pos)                              what the MLP reads (ln2's output), where a transcoder reads
    Head(l, h, pos, part)                      part: z (default), q, k, v, pattern (pos = query), result
    Edge(l, dest, sources)                     attention scores sources -> dest, every head of block l

Edits (`interp.analysis.edits`) say what happens there, in one shape, `fn(activation, at)`: `zero()`,
`mean_of(reference)`, `resample_from(reference)`, `patch_from(source, pos_map)`, `scale(f)`, `add(v)`,
`add_noise(...)`, `knock_out()`. A *cell* is a list of (site, edit) pairs applied together; the sweep
engine (`interp.analysis.engine.sweep`) runs many cells batched, and `edited(model, pairs)` applies one
cell to every forward inside a `with` block. Each analysis below is a short recipe on the engine.

One name per concept across the API:
- `answer`: the token whose logit or probability an analysis reads (an id, a single-token string, or one
  per example); it defaults to the model's top prediction where a default makes sense.
- `read_pos`: the position(s) whose logits are read; None (the default) is each example's last real token.
- `pos`: the positions a site covers, hence the positions an edit touches.
- `metric`: a function of the logits at `read_pos` only, [batch, d_vocab] ([batch, k, d_vocab] for k
  read positions), not of TransformerLens's all-position logits; a metric string object from
  `interp.analysis.metrics` is bound to the model first.

Results are tidy pandas DataFrames with one row per cell. NaN on purpose: `normalized` when the clean and
corrupted metrics are equal (no gap to recover), and Ferrando & Voita importances when no part resembles
the whole. Any other NaN or inf out of a metric raises `NonFiniteError`, naming the first non-finite
activation.
"""

from interp.analysis.ablation import AblationRun, ablate, ablation_sweep, run_ablated
from interp.analysis.attribution import attribution_patch, correlation
from interp.analysis.context_flow import ContextFlow, context_flow, flow_graph, flow_summary, importance
from interp.analysis.edits import (
    At,
    Edit,
    add,
    add_noise,
    knock_out,
    mean_of,
    patch_from,
    resample_from,
    scale,
    zero,
)
from interp.analysis.engine import Activation, Logits, NonFiniteError, edited, sweep
from interp.analysis.generation import generate, steer, steering_vector
from interp.analysis.knockout import Knockout, knockout, knockout_sweep
from interp.analysis.lens import direct_logit_attribution, logit_lens
from interp.analysis.metrics import kl_div, log_prob, logit_diff, normalized, normalized_recovery, prob
from interp.analysis.neurons import knowledge_neurons, neuron_effects, neuron_vocab, top_neurons
from interp.analysis.patching import denoise, noise, patch
from interp.analysis.specs import (
    MLP,
    Attn,
    Edge,
    Embed,
    Head,
    MLPIn,
    MLPPost,
    Neuron,
    PosEmbed,
    Resid,
    ResidFinal,
    ResidMid,
    ResidPost,
    ResidPre,
    Site,
)
from interp.analysis.tracing import causal_trace, subject_span

__all__ = [
    "MLP",
    "AblationRun",
    "Activation",
    "At",
    "Attn",
    "ContextFlow",
    "Edge",
    "Edit",
    "Embed",
    "Head",
    "Knockout",
    "Logits",
    "MLPIn",
    "MLPPost",
    "Neuron",
    "NonFiniteError",
    "PosEmbed",
    "Resid",
    "ResidFinal",
    "ResidMid",
    "ResidPost",
    "ResidPre",
    "Site",
    "ablate",
    "ablation_sweep",
    "add",
    "add_noise",
    "attribution_patch",
    "causal_trace",
    "context_flow",
    "correlation",
    "denoise",
    "direct_logit_attribution",
    "edited",
    "flow_graph",
    "flow_summary",
    "generate",
    "importance",
    "kl_div",
    "knock_out",
    "knockout",
    "knockout_sweep",
    "knowledge_neurons",
    "log_prob",
    "logit_diff",
    "logit_lens",
    "mean_of",
    "neuron_effects",
    "neuron_vocab",
    "noise",
    "normalized",
    "normalized_recovery",
    "patch",
    "patch_from",
    "prob",
    "resample_from",
    "run_ablated",
    "scale",
    "steer",
    "steering_vector",
    "subject_span",
    "sweep",
    "top_neurons",
    "zero",
]
