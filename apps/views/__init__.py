"""The dashboard's views, one module each, and the helpers they share.

Every view module has `render(state, model) -> ViewState`: it draws its widgets first (each seeded from the
view state, so a link reproduces it), folds their values back into the state, then shows results. Views
import only `apps.backend` (cached, checked calls) and `apps.model_view.ModelView` (the model they are
shown, for its config), never interp itself.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from apps import backend
from apps.state import ViewState


def seed(key: str, value: Any) -> str:
    """Give a widget its value from the view state, unless the user has already set it this session.

    Widgets are created with a key and no `value=`, so Streamlit never sees two sources for one value.
    """
    if key not in st.session_state:
        st.session_state[key] = value
    return key


@contextmanager
def guard() -> Iterator[None]:
    """Show what went wrong as an error box and carry on drawing the page, never a traceback."""
    try:
        yield
    except backend.LoadError as e:
        st.error(f"Could not load the model: {e}")
    except ValueError as e:  # backend.InputError and the library's checks: messages meant for people
        st.error(str(e))
    except Exception as e:  # a bug; the page must stay usable for the next input anyway
        st.error(f"Unexpected error ({type(e).__name__}): {e}")


def prompt_tokens(state: ViewState) -> list[str] | None:
    """The prompt's tokens, or None after a warning (empty prompt) or an error (too long)."""
    if not state.prompt.strip():
        st.warning("Type a prompt in the sidebar to start.")
        return None
    with guard():
        return backend.str_tokens(state.model, state.prompt)
    return None


def target_input(state: ViewState, label: str = "Target token") -> ViewState:
    """The shared target/answer text box; "" means the model's top prediction."""
    text = st.text_input(
        label,
        key=seed("target", state.target),
        placeholder="top prediction",
        help='One token, with its leading space: " Paris". Empty: the model\'s top prediction.',
    )
    return replace(state, target=text)


def target_id(state: ViewState) -> tuple[bool, int | None]:
    """(ok, id): the target's token id (None for "top prediction"); shows an error when it is not one token."""
    if not state.target:
        return True, None
    try:
        return True, backend.token_id(state.model, state.target)
    except ValueError as e:
        st.error(str(e))
        return False, None


def labels(tokens: Sequence[str]) -> list[str]:
    """Unique, readable axis labels: a position and its token ("4 France")."""
    return [f"{i} {t.strip() or repr(t)}" for i, t in enumerate(tokens)]


def heatmap(
    df: pd.DataFrame,
    x: str,
    y: str,
    color: str,
    *,
    x_order: Sequence[str] | None = None,
    y_order: Sequence[str] | None = None,
    text: str | None = None,
    title: str = "",
    scheme: str = "blues",
    domain: tuple[float, float] | None = None,
    tooltip: Sequence[str] = (),
) -> alt.Chart:
    """A rect heatmap with optional cell text; orders keep tokens in prompt order, not alphabetical.

    Give its height to `st.altair_chart(..., height=)`: with width="stretch" Streamlit ignores the chart's own.
    """
    scale = alt.Scale(scheme=scheme, domain=list(domain)) if domain else alt.Scale(scheme=scheme)
    if scheme in ("redblue", "blueorange") and domain is None:
        scale = alt.Scale(scheme=scheme, domainMid=0)
    base = alt.Chart(df, title=title).encode(
        x=alt.X(f"{x}:O", sort=list(x_order) if x_order else None, title=None),
        y=alt.Y(f"{y}:O", sort=list(y_order) if y_order else None, title=None),
    )
    chart = base.mark_rect().encode(
        color=alt.Color(f"{color}:Q", scale=scale), tooltip=[x, y, color, *tooltip]
    )
    if text is not None:
        # Light text on dark cells: the top half of the colour scale.
        mid = (domain[0] + domain[1]) / 2 if domain else 0.5
        ink = alt.condition(f"datum['{color}'] > {mid}", alt.value("white"), alt.value("black"))
        chart = chart + base.mark_text(fontSize=10).encode(text=f"{text}:N", color=ink)
    return chart
