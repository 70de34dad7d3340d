"""Issue 15 without a browser: the clamp-and-note rule, every new setting in the URL, the model allowlist."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from apps import backend, state  # noqa: E402


def test_new_settings_round_trip_through_the_url():
    s = state.ViewState(
        flow_residual=False, neuron_pos="last token", n_new=5, trace_layer=2, lens_target=" Rome",
        answer=" Paris", patch_answer=" Paris", ref_source="corpus", att_all=True, clean="x",
    )  # fmt: skip
    params = state.to_query(s)
    assert params["flow_residual"] == "0" and params["att_all"] == "1" and params["trace_layer"] == "2"
    assert state.from_query(params) == (s, [])


def test_out_of_range_values_are_clamped_with_a_note_one_rule():
    s, notes = state.from_query({"head": "-1", "window": "0", "n_new": "0"})
    assert (s.head, s.window, s.n_new) == (0, 1, 1) and len(notes) == 3
    assert all("out of range" in n and "using" in n for n in notes)
    fitted, notes = state.fit(
        state.ViewState(layer=99, head=99, dest=999, window=99, trace_layer=7), 4, 4, 512, 6
    )
    assert (fitted.layer, fitted.head, fitted.dest, fitted.window, fitted.trace_layer) == (3, 3, -1, 4, 3)
    assert len(notes) == 5 and all("using" in n for n in notes)
    fitted, notes = state.fit(state.ViewState(dest=-9), 4, 4, 512, 6)
    assert fitted.dest == 0 and notes
    assert state.fit(state.ViewState(), 4, 4, 512, 6) == (state.ViewState(), [])


def test_only_offered_models_load_and_the_message_hides_which_paths_exist(tmp_path, monkeypatch):
    monkeypatch.delenv("INTERP_DASHBOARD_MODELS", raising=False)
    monkeypatch.delenv("INTERP_DASHBOARD_HUB", raising=False)
    monkeypatch.setattr(sys, "argv", ["dashboard.py", "--models", str(tmp_path / "offered")])
    (tmp_path / "offered" / "m").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    assert backend.check_source("tiny-facts") == "tiny-facts"
    assert backend.check_source(str(tmp_path / "offered" / "m")) == str(
        (tmp_path / "offered" / "m").resolve()
    )
    messages = []
    for source in (tmp_path / "secret", tmp_path / "missing", tmp_path / "offered" / ".." / "secret"):
        with pytest.raises(backend.InputError, match="not a model this server offers") as e:
            backend.check_source(str(source))
        messages.append(str(e.value).replace(str(source), "PATH"))
    assert len(set(messages)) == 1
    with pytest.raises(backend.InputError, match="not a model this server offers"):
        backend.check_source("gpt2")  # hub ids are off by default
    monkeypatch.setattr(sys, "argv", ["dashboard.py", "--allow-hub"])
    assert backend.check_source("gpt2") == "gpt2"


def test_the_dashboard_opens_on_the_library_default_model():
    from interp.embedded import DEFAULT

    assert state.ViewState().model == DEFAULT == "tiny-facts-2"
