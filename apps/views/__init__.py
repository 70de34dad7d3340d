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


def target_input(state: ViewState, label: str = "Target token", field: str = "target") -> ViewState:
    """A view's own target/answer text box (field: target, lens_target, answer, patch_answer): targets
    belong to views, so typing one in Predict never changes what Patching scores. "" = top prediction."""
    text = st.text_input(
        label,
        key=seed(field, getattr(state, field)),
        placeholder="top prediction",
        help="One token, with its leading space, e.g. ' the'. Empty: the model's top prediction.",
    )
    return replace(state, **{field: text})


def target_id(state: ViewState, field: str = "target") -> tuple[bool, int | None]:
    """(ok, id): the field's token id (None for "top prediction"); shows an error when it is not one token."""
    text = getattr(state, field)
    if not text:
        return True, None
    try:
        return True, backend.token_id(state.model, text)
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
    cell_px: float | None = None,
    reverse: bool = False,
    color_title: str | None = None,
) -> alt.Chart:
    """A rect heatmap with optional cell text; orders keep tokens in prompt order, not alphabetical.

    Every x label is drawn (no overlap culling: a dropped label leaves a column unnamed), rotated when there
    are many. `cell_px`, the expected cell width, cuts cell text to fit with an ellipsis (the tooltip keeps
    it whole), so neighbouring cells never overlap. Give its height to `st.altair_chart(..., height=)`: with
    width="stretch" Streamlit ignores the chart's own.
    """
    scale = (
        alt.Scale(scheme=scheme, domain=list(domain), reverse=reverse)
        if domain
        else alt.Scale(scheme=scheme, reverse=reverse)
    )
    if scheme in ("redblue", "blueorange") and domain is None:
        scale = alt.Scale(scheme=scheme, domainMid=0)
    n_x = len(x_order) if x_order else df[x].nunique()
    flat = cell_px is not None and cell_px >= 90 or cell_px is None and n_x <= 8  # room for flat labels
    x_axis = alt.Axis(labelOverlap=False, labelAngle=0 if flat else -90, labelFontSize=10 if n_x <= 32 else 9,
                      labelLimit=max(int(cell_px or 110) - 6, 40) if flat else 110)  # fmt: skip
    base = alt.Chart(df, title=title).encode(
        x=alt.X(f"{x}:O", sort=list(x_order) if x_order else None, title=None, axis=x_axis),
        y=alt.Y(
            f"{y}:O", sort=list(y_order) if y_order else None, title=None, axis=alt.Axis(labelOverlap=False)
        ),
    )
    chart = base.mark_rect().encode(
        color=alt.Color(f"{color}:Q", scale=scale, title=color_title or color),
        tooltip=[x, y, color, *tooltip],
    )
    if text is not None and (cell_px is None or cell_px >= 14):
        # Light text on dark cells: the top half of the colour scale.
        mid = (domain[0] + domain[1]) / 2 if domain else 0.5
        dark = f"datum['{color}'] {'<' if reverse else '>'} {mid}"
        ink = alt.condition(dark, alt.value("white"), alt.value("black"))
        small = cell_px is not None and cell_px < 36
        limit = 30 if small else max(cell_px - 4, 10) if cell_px else 0  # rotated: the row's height
        mark = base.mark_text(fontSize=8 if small else 10, limit=limit, angle=270 if small else 0)
        chart = chart + mark.encode(text=f"{text}:N", color=ink)
    # SVG, not canvas: a page reader (a test, a screen reader) finds each cell, its text and the legend.
    return chart.properties(usermeta={"embedOptions": {"renderer": "svg"}})


def _converted(spec: str, fmt: str) -> bytes:
    """The chart as PNG (2x) or SVG, drawn on the server by vl-convert (no browser needed)."""
    import vl_convert as vlc

    if fmt == "png":
        return vlc.vegalite_to_png(spec, scale=2)
    return vlc.vegalite_to_svg(spec).encode()


def export_buttons(chart: alt.TopLevelMixin, name: str) -> None:
    """PNG and SVG downloads of a chart; converted only when clicked (and without a rerun)."""
    with alt.data_transformers.disable_max_rows():  # st.altair_chart draws any size; so must the export
        spec = chart.to_json()
    cols = st.columns([1, 1, 8])
    for col, fmt, mime in ((cols[0], "png", "image/png"), (cols[1], "svg", "image/svg+xml")):
        col.download_button(
            fmt.upper(),
            data=lambda fmt=fmt: _converted(spec, fmt),
            file_name=f"{name}.{fmt}",
            mime=mime,
            key=f"export_{name}_{fmt}",
            on_click="ignore",
            icon=":material/download:",
        )
