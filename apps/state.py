"""The dashboard's whole view state: a frozen dataclass that round-trips through URL query parameters.

A copied link reproduces the view. Every field the user can change is encoded in `st.query_params` under
its own name; fields at their default are left out so links stay short; a malformed value falls back to
the default with a note instead of breaking the page. Sites are written compactly:

    ?view=predict&heads=L0H1,L2H3&mlp=0&neurons=L2N117&method=mean&positions=4,5

Everything here is plain Python (no Streamlit import): the session and the query parameters are passed
in as mappings, so the module is unit-tested directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields, replace
from typing import Any

from interp.embedded import DEFAULT as DEFAULT_MODEL

VIEWS: dict[str, str] = {
    "predict": "Predict & ablate",
    "attention": "Attention",
    "flow": "Context flow",
    "lens": "Logit lens",
    "tracing": "Fact tracing",
    "patching": "Patching",
    "compare": "Compare two prompts",
    "features": "Features (SAE)",
}
METHODS = ("zero", "mean", "resample")
SITES = ("resid", "attn", "mlp", "head")
METRICS = ("logit_diff", "prob")
REFERENCES = ("prompts", "corpus")  # mean/resample reference: the typed prompts, or the embedded corpus
NEURON_POS = ("last subject token", "last token")
# Same-template prompts: mean and resample ablation read the first n tokens of prompts at least n long.
DEFAULT_REFERENCE = "\n".join(
    f"The capital of {c} is" for c in ("Germany", "Italy", "Spain", "Japan", "Egypt", "Canada")
)

Pairs = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class ViewState:
    model: str = DEFAULT_MODEL  # an embedded model's name or a local folder; opens on the default model
    prompt: str = "The capital of France is"
    view: str = "predict"  # a key of VIEWS
    heads: Pairs = ()  # ablated heads, (layer, head)
    attn: tuple[int, ...] = ()  # ablated attention layers
    mlp: tuple[int, ...] = ()  # ablated MLP layers
    neurons: Pairs = ()  # ablated neurons, (layer, index)
    method: str = "zero"  # one of METHODS
    positions: tuple[int, ...] = ()  # positions the ablation touches; () = every position
    reference: str = DEFAULT_REFERENCE  # mean/resample reference prompts, one per line
    ref_source: str = "prompts"  # one of REFERENCES
    target: str = ""  # Predict's target token; "" = the model's top prediction
    n_new: int = 8  # Predict's "new tokens" to generate
    layer: int = 0  # selected layer (attention)
    att_all: bool = False  # attention: every layer's heads at once, as small multiples
    head: int = 0  # selected head (attention)
    dest: int = -1  # selected destination position; negative counts from the end
    update_target: str = ""  # attention's E' = E + ΔE target token; "" = the top prediction at dest
    threshold: float = 0.05  # context-flow edge threshold
    flow_residual: bool = True  # context flow: draw the residual edges
    flow_pick: str = ""  # context flow: the clicked edge "E<layer>.<head>.<src>.<dest>" or node "N<x>.<pos>"
    lens_target: str = ""  # logit lens target token; "" = the final top token at each position
    subject: str = ""  # fact-tracing subject; "" = suggested from the prompt
    answer: str = ""  # fact-tracing answer token; "" = the model's top prediction
    trace_layer: int = 0  # fact tracing: the MLP layer whose neurons are listed
    neuron_pos: str = "last subject token"  # one of NEURON_POS
    window: int = 1  # fact-tracing restore window (layers) for MLP and attention traces
    clean: str = ""  # patching clean prompt; "" = the sidebar prompt
    corrupted: str = "The capital of Italy is"
    site: str = "resid"  # patching site kind, one of SITES
    metric: str = "logit_diff"  # patching metric, one of METRICS
    compare: str = "The capital of Italy is"  # compare view: the second prompt
    cmp_layer: int = 0  # compare view: the layer of the head whose attention is shown
    cmp_head: int = 0  # compare view: that head
    sae: str = ""  # features view: the dictionary's name ("" = the first offered)
    latent: int = -1  # features view: the selected latent (-1 = the prompt's most active)
    feat_ablate: bool = False  # features view: ablate the selected latent live
    patch_answer: str = ""  # patching clean answer; "" = the clean prompt's top prediction

    def has_ablation(self) -> bool:
        return bool(self.heads or self.attn or self.mlp or self.neurons)


DEFAULT = ViewState()


# --- site lists as text: "L0H1,L2H3", "L2N117", "0,2" -------------------------------------------------


def _pairs_parser(letter: str) -> Callable[[str], Pairs]:
    pattern = re.compile(rf"L(\d+){letter}(\d+)", re.IGNORECASE)

    def parse(text: str) -> Pairs:
        out: list[tuple[int, int]] = []
        for item in filter(None, (s.strip() for s in text.split(","))):
            m = pattern.fullmatch(item)
            if m is None:
                raise ValueError(f"{item!r} is not of the form L<layer>{letter}<index>, e.g. L2{letter}5")
            out.append((int(m[1]), int(m[2])))
        return tuple(sorted(set(out)))

    return parse


parse_heads = _pairs_parser("H")
parse_neurons = _pairs_parser("N")


def format_heads(heads: Pairs) -> str:
    return ",".join(f"L{a}H{b}" for a, b in heads)


def format_neurons(neurons: Pairs) -> str:
    return ",".join(f"L{a}N{b}" for a, b in neurons)


def parse_ints(text: str) -> tuple[int, ...]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if not re.fullmatch(r"-?\d+", s)]
    if bad:
        raise ValueError(f"{', '.join(bad)} not integers")
    return tuple(sorted({int(s) for s in items}))


def format_ints(values: tuple[int, ...]) -> str:
    return ",".join(map(str, values))


def _choice(options: tuple[str, ...] | dict[str, str]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    return parse


class Clamped(ValueError):
    """A value out of range, replaced by the nearest valid one (`value`); the message says so."""

    def __init__(self, message: str, value: Any) -> None:
        super().__init__(message)
        self.value = value


def _bounded_int(low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise Clamped(f"{value} is below {low}; using {low}", low)
        return value

    return parse


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"{text!r} is not 0 or 1")
    return text == "1"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{value} is outside [0, 1]")
    return value


# field -> (parse from text, format to text); fields not listed are plain strings.
CODECS: dict[str, tuple[Callable[[str], Any], Callable[[Any], str]]] = {
    "view": (_choice(VIEWS), str),
    "heads": (parse_heads, format_heads),
    "attn": (parse_ints, format_ints),
    "mlp": (parse_ints, format_ints),
    "neurons": (parse_neurons, format_neurons),
    "method": (_choice(METHODS), str),
    "positions": (parse_ints, format_ints),
    "ref_source": (_choice(REFERENCES), str),
    "n_new": (_bounded_int(1), str),
    "layer": (_bounded_int(0), str),
    "head": (_bounded_int(0), str),
    "dest": (int, str),
    "threshold": (_fraction, lambda v: f"{v:g}"),
    "flow_residual": (_flag, lambda v: str(int(v))),
    "att_all": (_flag, lambda v: str(int(v))),
    "trace_layer": (_bounded_int(0), str),
    "cmp_layer": (_bounded_int(0), str),
    "latent": (_bounded_int(-1), str),
    "feat_ablate": (_flag, lambda v: str(int(v))),
    "cmp_head": (_bounded_int(0), str),
    "neuron_pos": (_choice(NEURON_POS), str),
    "window": (_bounded_int(1), str),
    "site": (_choice(SITES), str),
    "metric": (_choice(METRICS), str),
}


def _codec(name: str) -> tuple[Callable[[str], Any], Callable[[Any], str]]:
    return CODECS.get(name, (str, str))


def to_query(state: ViewState) -> dict[str, str]:
    """Query parameters for the fields that differ from their defaults."""
    out = {}
    for f in fields(ViewState):
        value = getattr(state, f.name)
        if value != getattr(DEFAULT, f.name):
            out[f.name] = _codec(f.name)[1](value)
    return out


def from_query(params: Mapping[str, str | list[str]]) -> tuple[ViewState, list[str]]:
    """The state a link describes, and a note for each value that had to fall back to its default."""
    values, notes = {}, []
    names = {f.name for f in fields(ViewState)}
    for key, raw in params.items():
        if key not in names:
            continue  # other apps' or analytics parameters
        text = raw[-1] if isinstance(raw, list) else raw  # st.query_params keeps the last repeat too
        try:
            values[key] = _codec(key)[0](text)
        except Clamped as e:
            values[key] = e.value
            notes.append(f"The link's {key}={text!r} is out of range: {e}.")
        except ValueError as e:
            notes.append(f"Ignored the link's {key}={text!r}: {e}.")
    return ViewState(**values), notes


N_NEW_MAX = 64  # Predict's "new tokens" at most


def fit(
    state: ViewState, n_layers: int, n_heads: int, d_mlp: int, n_tokens: int | None = None
) -> tuple[ViewState, list[str]]:
    """Drop sites the model does not have (a link made for another model) and clamp out-of-range
    selections to the nearest valid value; a note says what changed. One rule for every field."""
    dropped: list[str] = []
    notes: list[str] = []

    def clamp(name: str, low: int, high: int, what: str) -> int:
        value = getattr(state, name)
        near = min(max(value, low), high)
        if near != value:
            notes.append(f"{name}={value} is out of range ({what} {low} to {high}); using {near}.")
        return near

    dest = state.dest
    if n_tokens is not None and not -n_tokens <= dest < n_tokens:
        dest = -1 if dest >= n_tokens else 0
        notes.append(
            f"dest={state.dest} is outside the prompt's {n_tokens} tokens; using "
            f"{'the last token' if dest == -1 else 'the first token'}."
        )

    def keep(items: tuple, ok: Callable[[Any], bool], label: Callable[[Any], str]) -> tuple:
        dropped.extend(label(x) for x in items if not ok(x))
        return tuple(x for x in items if ok(x))

    fitted = replace(
        state,
        heads=keep(state.heads, lambda x: x[0] < n_layers and x[1] < n_heads, lambda x: f"L{x[0]}H{x[1]}"),
        attn=keep(state.attn, lambda x: x < n_layers, lambda x: f"attention layer {x}"),
        mlp=keep(state.mlp, lambda x: x < n_layers, lambda x: f"MLP layer {x}"),
        neurons=keep(state.neurons, lambda x: x[0] < n_layers and x[1] < d_mlp, lambda x: f"L{x[0]}N{x[1]}"),
        layer=clamp("layer", 0, n_layers - 1, "layers"),
        head=clamp("head", 0, n_heads - 1, "heads"),
        trace_layer=clamp("trace_layer", 0, n_layers - 1, "layers"),
        cmp_layer=clamp("cmp_layer", 0, n_layers - 1, "layers"),
        cmp_head=clamp("cmp_head", 0, n_heads - 1, "heads"),
        window=clamp("window", 1, n_layers, "window"),
        n_new=clamp("n_new", 1, N_NEW_MAX, "new tokens"),
        dest=dest,
    )
    if dropped:
        notes.insert(0, f"The model has no {', '.join(dropped)}; dropped from the ablation.")
    return fitted, notes


# --- the session: one canonical state per browser tab ---------------------------------------------------

SESSION_KEY = "_view_state"


def current(session: MutableMapping[str, Any], params: Mapping[str, Any]) -> tuple[ViewState, list[str]]:
    """The session's state; on a session's first run, the state the URL describes (and its notes).

    The state is kept apart from widget values because Streamlit forgets a widget's value when a rerun
    does not draw it (another view is shown), while the link must keep every view's settings.
    """
    if SESSION_KEY in session:
        return session[SESSION_KEY], []
    state, notes = from_query(params)
    session[SESSION_KEY] = state
    return state, notes


def commit(session: MutableMapping[str, Any], query_params: Any, state: ViewState) -> None:
    """Keep the state for the next rerun and write it into the URL (only when the URL changes)."""
    session[SESSION_KEY] = state
    wanted = to_query(state)
    if query_params.to_dict() != wanted:
        query_params.from_dict(wanted)
