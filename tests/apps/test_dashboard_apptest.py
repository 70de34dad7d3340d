"""The dashboard, driven headless with Streamlit's AppTest: every view, numbers checked against interp.

Each number the page shows is recomputed here with the library on a model loaded by the test (never a
hard-coded prediction, since the embedded checkpoint may change). Bad input must give an error or a
warning on the page, never an exception; the URL must carry the whole view state.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from streamlit.testing.v1 import AppTest

import interp
from interp.analysis import (
    MLP,
    Head,
    Neuron,
    Resid,
    ablate,
    causal_trace,
    denoise,
    direct_logit_attribution,
    flow_graph,
    generate,
    logit_diff,
    logit_lens,
    prob,
    run_ablated,
    top_neurons,
)
from interp.embedded import DEFAULT

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # `apps` is a folder of the checkout, not an installed package

from apps import state  # noqa: E402

APP = str(REPO / "apps" / "dashboard.py")
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def model():
    return interp.load().requires_grad_(False)


def app(**params: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(params)
    return at.run()


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def frame(at: AppTest, column: str) -> pd.DataFrame:
    """The shown DataFrame that has `column`."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def metric(at: AppTest, label_start: str) -> str:
    found = [m.value for m in at.metric if m.label.startswith(label_start)]
    assert found, f"no metric labelled {label_start!r}..."
    return found[0]


def top_token(model, prompt: str) -> tuple[int, str]:
    """The model's prediction, computed here: the checkpoint may change, so tests never hard-code it."""
    i = int(model(prompt)[0, -1].argmax())
    return i, model.to_string([i])


# --- the view state and the URL -------------------------------------------------------------------------


def test_state_round_trips_through_query_params():
    s = state.ViewState(
        view="tracing", heads=((0, 1), (2, 3)), mlp=(1,), neurons=((2, 117),), method="mean",
        positions=(4, 5), target=" Paris", layer=2, dest=3, threshold=0.1, prompt="a & b = c?",
    )  # fmt: skip
    params = state.to_query(s)
    assert params["heads"] == "L0H1,L2H3" and params["neurons"] == "L2N117" and "model" not in params
    assert state.from_query(params) == (s, [])
    assert state.to_query(state.ViewState()) == {}


def test_bad_query_params_fall_back_to_defaults_with_notes():
    s, notes = state.from_query(
        {"view": "nope", "heads": "L1H2,x", "layer": "-3", "threshold": "2", "utm": "x"}
    )
    assert s == state.ViewState() and len(notes) == 4
    fitted, notes = state.fit(state.ViewState(heads=((1, 2), (9, 0)), mlp=(7,), layer=9), 4, 4, 512)
    assert fitted.heads == ((1, 2),) and fitted.mlp == () and fitted.layer == 3 and notes


def test_widgets_write_the_url_and_a_copied_url_reproduces_the_view(model):
    at = ok(app())
    at.checkbox(key="head_1_2").check()
    at.checkbox(key="mlp_3").check()
    at.multiselect(key="positions").set_value([4, 5])
    ok(at.run())
    assert at.query_params == {"heads": "L1H2", "mlp": "3", "positions": "4,5"}
    shown = frame(at, "p_after")

    again = ok(app(**at.query_params))  # a new session opened from the copied link
    assert again.checkbox(key="head_1_2").value and again.checkbox(key="mlp_3").value
    assert not again.checkbox(key="head_1_1").value
    assert again.multiselect(key="positions").value == [4, 5]
    pd.testing.assert_frame_equal(frame(again, "p_after"), shown)

    # Every view's settings survive a trip through another view.
    at.radio(key="view").set_value("attention").run()
    at.selectbox(key="att_head").set_value(3).run()
    ok(at.radio(key="view").set_value("predict").run())
    assert at.checkbox(key="head_1_2").value
    assert at.query_params["head"] == "3" and at.query_params["heads"] == "L1H2"


# --- Predict & ablate -----------------------------------------------------------------------------------


def test_predictions_match_the_model(model):
    at = ok(app())
    df = frame(at, "p_before")
    probs = model(PROMPT)[0, -1].float().softmax(-1)
    assert df["p_before"].tolist() == pytest.approx(probs[df["token_id"].tolist()].tolist(), abs=1e-6)
    assert df["token_id"].tolist()[:8] == probs.topk(8).indices.tolist()
    assert (df["p_after"] == df["p_before"]).all()  # nothing ablated yet
    _, answer = top_token(model, PROMPT)
    assert metric(at, f"P({answer!r}) before") == f"{probs.max():.4f}"


@pytest.mark.parametrize("method", ["zero", "mean", "resample"])
def test_ablated_probability_equals_run_ablated(model, method):
    at = ok(app(method=method, target=" Paris"))
    at.checkbox(key="head_1_2").check()
    at.checkbox(key="mlp_0").check()
    at.text_input(key="neurons").input("L2N7, L3N100")
    at.multiselect(key="positions").set_value([3, 4, 5])
    ok(at.run())
    df = frame(at, "p_after")
    paris = df[df["token"] == " Paris"].iloc[0]

    pos = (3, 4, 5)
    sites = [Head(1, 2, pos), MLP(0, pos), Neuron(2, 7, pos), Neuron(3, 100, pos)]
    reference = None if method == "zero" else state.DEFAULT_REFERENCE.splitlines()
    paris_id = model.to_single_token(" Paris")
    expected = run_ablated(model, PROMPT, sites, prob(paris_id), method=method, reference=reference).metric
    assert paris["p_after"] == pytest.approx(expected, abs=1e-6)
    assert paris["p_after"] != pytest.approx(paris["p_before"], abs=1e-4)  # the ablation did something
    assert metric(at, "P(' Paris') after") == f"{expected:.4f}"


def test_continue_generates_with_and_without_the_ablation(model):
    at = ok(app(heads="L0H0,L1H2", mlp="3"))
    at.number_input(key="n_new").set_value(5)
    at.button[0].click()
    ok(at.run())
    shown = [c.value for c in at.code]
    plain = generate(model, PROMPT, 5)
    with ablate(model, [Head(0, 0), Head(1, 2), MLP(3)]):
        ablated = generate(model, PROMPT, 5)
    bos = model.to_string(model.to_tokens(PROMPT)[0, :1])
    assert shown == [plain.removeprefix(bos), ablated.removeprefix(bos)]


# --- the other views ------------------------------------------------------------------------------------


def test_attention_view_explains_a_head(model):
    at = ok(app(view="attention", layer="1", head="2"))
    _, cache = model.run_with_cache(PROMPT)
    table = frame(at, "weight")
    assert table["token"].tolist() == model.to_str_tokens(PROMPT)
    pattern = cache["pattern", 1][0, 2, -1]
    assert table["weight"].tolist() == pytest.approx(pattern.tolist(), abs=1e-5)
    scores = cache["attn_scores", 1][0, 2, -1]
    assert table["q·k/√d"].tolist() == pytest.approx(scores.tolist(), abs=1e-4)
    e, mid = cache["resid_pre", 1][0, -1], cache["resid_mid", 1][0, -1]
    assert metric(at, "‖E‖") == f"{e.norm():.3f}"
    assert metric(at, "‖E'‖") == f"{mid.norm():.3f}"
    head_delta = cache["z", 1][0, -1, 2] @ model.blocks[1].attn.W_O[2]
    assert metric(at, "‖ΔE head‖") == f"{head_delta.norm():.3f}"

    at.selectbox(key="att_dest").set_value(2)
    ok(at.run())
    assert len(frame(at, "weight")) == 3  # sources 0..2; later ones are masked
    assert at.query_params["dest"] == "2"

    # Layer 0 attends within a window: masked sources are left out, the rest match the model.
    at.selectbox(key="att_layer").set_value(0)
    at.selectbox(key="att_dest").set_value(5)
    ok(at.run())
    table, pattern = frame(at, "weight"), cache["pattern", 0][0, 2, 5]
    assert table["pos"].tolist() == torch.nonzero(pattern).flatten().tolist()
    assert table["weight"].tolist() == pytest.approx(pattern[table["pos"].tolist()].tolist(), abs=1e-5)


def test_flow_view_matches_flow_graph(model):
    at = ok(app(view="flow"))
    at.slider(key="threshold").set_value(0.1)
    ok(at.run())
    expected = flow_graph(model, PROMPT, threshold=0.1)
    expected = expected[expected["kind"] == "head"].sort_values("importance", ascending=False)
    shown = frame(at, "importance")
    assert shown["importance"].tolist() == pytest.approx(expected["importance"].tolist(), abs=1e-6)
    assert at.query_params["threshold"] == "0.1"


def test_lens_view_matches_logit_lens(model):
    at = ok(app(view="lens", lens_target=" Paris"))
    shown = frame(at, "target_prob")
    expected = logit_lens(model, PROMPT, model.to_single_token(" Paris"), k=3)
    assert shown["target_prob"].tolist() == pytest.approx(expected["target_prob"].tolist(), abs=1e-6)
    assert shown["top_prob"].tolist() == pytest.approx([p[0] for p in expected["top_probs"]], abs=1e-6)


def test_tracing_view_matches_causal_trace_and_top_neurons(model):
    at = ok(app(view="tracing", trace_layer="2"))
    df = causal_trace(model, PROMPT, "France")
    answer_id, answer = top_token(model, PROMPT)
    assert metric(at, f"P({answer!r}) clean") == f"{df.attrs['p_clean']:.4f}"
    assert metric(at, f"P({answer!r}) subject noised") == f"{df.attrs['p_corrupted']:.4f}"
    start, end = df.attrs["subject_span"]
    neurons = frame(at, "promotes")
    expected = top_neurons(model, PROMPT, 10, layers=[2], read_pos=end - 1)
    assert neurons["neuron"].tolist() == expected["neuron"].tolist()
    assert neurons["activation"].tolist() == pytest.approx(expected["activation"].tolist(), abs=1e-5)
    effects = frame(at, "all positions")
    p_no_mlp1 = run_ablated(model, PROMPT, MLP(1), prob(answer_id)).metric
    assert effects["all positions"][1] == pytest.approx(p_no_mlp1, abs=1e-6)

    at.text_input(key="subject").input("Germany")
    ok_page = at.run()
    assert not ok_page.exception and any("not found" in e.value for e in ok_page.error)


def test_patching_view_matches_denoise_and_offers_csv(model):
    at = ok(app(view="patching", site="resid"))
    shown = frame(at, "normalized")
    clean, corrupted = PROMPT, "The capital of Italy is"
    (paris, _), (rome, _) = top_token(model, clean), top_token(model, corrupted)
    n_pos = len(model.to_str_tokens(clean))
    expected = denoise(model, clean, corrupted, Resid.every(model, n_pos), logit_diff(paris, rome))
    assert shown["metric"].tolist() == pytest.approx(expected["metric"].tolist(), abs=1e-5)
    assert len(at.download_button) == 1

    at.selectbox(key="site").set_value("head")
    ok(at.run())
    heads = denoise(model, clean, corrupted, Head.every(model), logit_diff(paris, rome))
    assert frame(at, "normalized")["metric"].tolist() == pytest.approx(heads["metric"].tolist(), abs=1e-5)


# --- bad input ------------------------------------------------------------------------------------------


def test_bad_inputs_show_errors_not_exceptions():
    at = app(prompt="")
    assert not at.exception and at.warning and "prompt" in at.warning[0].value

    long = " ".join(["the"] * 200)
    for view in state.VIEWS:
        page = app(prompt=long, view=view)
        assert not page.exception, view
        assert page.error or view == "patching", view  # patching has its own two prompts

    at = app(view="patching", corrupted="The capital of the United Kingdom is")
    assert not at.exception and any("same number of tokens" in e.value for e in at.error)

    at = app(target="Paris is")
    assert not at.exception and any("single token" in e.value for e in at.error)

    at = app(neurons="L2N117")
    at.text_input(key="neurons").input("L2N117, oops")
    ok(at.run())
    assert at.warning and at.query_params["neurons"] == "L2N117"  # the last good value stays

    at = app(method="mean", reference="Paris", heads="L0H0")
    assert not at.exception and any("reference prompts" in e.value for e in at.error)

    at = app(view="nope", heads="L9H9,zz")
    assert not at.exception and not at.error and len(at.warning) == 2  # bad link: two notes, a usable page


def test_bad_model_path_then_recovery_and_a_local_folder(model, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DASHBOARD_MODELS", str(tmp_path))  # the server offers folders under tmp_path
    at = app(model=str(tmp_path / "missing"))
    assert not at.exception and at.error
    assert at.selectbox(key="model_choice").value == "Local folder…"
    at.selectbox(key="model_choice").set_value(DEFAULT)
    ok(at.run())
    assert "model" not in at.query_params
    embedded = frame(at, "p_after")

    folder = model.save(tmp_path / "copy")
    at.selectbox(key="model_choice").set_value("Local folder…").run()
    at.text_input(key="model_path").input(str(folder))
    ok(at.run())
    assert at.query_params["model"] == str(folder)
    pd.testing.assert_frame_equal(frame(at, "p_after"), embedded)  # the same weights, loaded from disk


def test_attention_view_shows_e_prime_in_tokens(model):
    at = ok(app(view="attention", layer="1", update_target=" Paris"))
    paris = model.to_single_token(" Paris")
    _, cache = model.run_with_cache(PROMPT)
    layers = frame(at, "cos(E, E')")
    assert layers["layer"].tolist() == list(range(model.cfg.n_layers))
    for layer in range(model.cfg.n_layers):
        e, mid = cache["resid_pre", layer][0, -1].double(), cache["resid_mid", layer][0, -1].double()
        cos = float(e @ mid / (e.norm() * mid.norm()))
        assert layers["cos(E, E')"][layer] == pytest.approx(cos, abs=1e-3)
        ratio = float(cache["attn_out", layer][0, -1].double().norm() / e.norm())
        assert layers["‖ΔE‖/‖E‖"][layer] == pytest.approx(ratio, abs=1e-3)
    dla = direct_logit_attribution(model, PROMPT, paris, read_pos=-1)
    mine = dla[(dla["layer"] == 1) & dla["component"].isin(["head", "attn_bias"])]
    parts = frame(at, "dla")
    assert parts["dla"].tolist() == pytest.approx(mine["attribution"].tolist(), abs=1e-5)
    assert parts["part"].tolist()[:2] == ["L1H0", "L1H1"]
    at.text_input(key="update_target").set_value(" Rome")
    ok(at.run())
    assert at.query_params["update_target"] == " Rome"


def test_compare_view_shows_both_prompts_and_keeps_the_second_in_the_url(model):
    second = "The capital of Japan is"
    at = ok(app(view="compare", compare=second, cmp_layer="2", cmp_head="1"))
    tables = [d.value for d in at.dataframe if list(d.value.columns) == ["token", "p"]]
    assert len(tables) == 2, "one predictions table per prompt"
    for shown, prompt in zip(tables, (PROMPT, second), strict=True):
        probs = model(prompt)[0, -1].float().softmax(-1)
        top = probs.topk(8)
        assert shown["token"].tolist() == [model.to_string([int(i)]) for i in top.indices]
        assert shown["p"].tolist() == pytest.approx(top.values.tolist(), abs=1e-6)
    at.text_input(key="compare").set_value("The capital of Spain is")
    ok(at.run())
    assert at.query_params["compare"] == "The capital of Spain is"
    assert at.query_params["cmp_layer"] == "2"


def test_features_view_without_dictionaries_says_so(model, tmp_path, monkeypatch):
    monkeypatch.delenv("INTERP_DASHBOARD_SAES", raising=False)
    monkeypatch.setenv("INTERP_DASHBOARD_MODELS", str(tmp_path))
    folder = model.save(tmp_path / "copy")  # a local copy of an embedded model ships no dictionaries
    at = ok(app(view="features", model=str(folder)))
    assert any("No dictionary is available for this model" in i.value for i in at.info)


@pytest.mark.parametrize("name", ["tiny-facts", "tiny-facts-2"])
def test_features_view_offers_the_loaded_models_own_dictionaries(name, monkeypatch):
    """Each embedded model's shipped dictionaries, by name or by its weights folder, and no other model's."""
    import interp.sae
    from apps import backend
    from interp.embedded import weights_dir

    monkeypatch.delenv("INTERP_DASHBOARD_SAES", raising=False)
    own = [n.split("/")[1] for n in interp.sae.shipped() if n.startswith(f"{name}/")]
    assert own and list(backend.sae_folders(name)) == own
    assert list(backend.sae_folders(str(weights_dir(name)))) == own
    at = ok(app(view="features", model=name))
    assert next(s for s in at.selectbox if s.label == "Dictionary").options == own
    assert any(f"reading {interp.sae.load(f'{name}/{own[0]}').cfg.hook_name}" in c.value for c in at.caption)


def test_features_view_lists_latents_and_ablates_one_live(model, tmp_path, monkeypatch):
    from interp.sae import SAE, SAEConfig, save
    from interp.sae.features import prompt_latents
    from interp.sae.latent import Latent

    sae = SAE(SAEConfig("topk", d_in=model.cfg.d_model, d_sae=64, hook_name="blocks.1.hook_resid_post", k=4))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in sae.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=gen))
    save(sae, tmp_path / "seeded-topk")
    monkeypatch.setenv("INTERP_DASHBOARD_SAES", str(tmp_path / "seeded-topk"))
    at = ok(app(view="features", sae="seeded-topk"))  # not the shipped ones, offered first
    expected = prompt_latents(model, sae, PROMPT, k=3)
    shown = frame(at, "latent")
    assert shown["latent"].tolist() == expected["latent"].tolist()
    assert shown["activation"].tolist() == pytest.approx(expected["activation"].tolist(), abs=1e-5)
    latent = int(expected["latent"].iloc[-1])  # the last position's most active latent
    at.number_input(key="latent").set_value(latent)
    at.toggle(key="feat_ablate").set_value(True)
    ok(at.run())
    assert at.query_params["latent"] == str(latent) and at.query_params["feat_ablate"] == "1"
    table = frame(at, "p_after")
    after = run_ablated(model, PROMPT, [Latent(sae, latent)]).logits[0, -1].float().softmax(-1)
    ids = [model.to_single_token(t) for t in table["token"]]
    assert table["p_after"].tolist() == pytest.approx(after[ids].tolist(), abs=1e-6)
    assert (table["change"].abs() > 1e-6).any()  # ablating a firing latent moves the prediction
