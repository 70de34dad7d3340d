"""apps.model_view.ModelView without Streamlit, against interp; and the app's import boundaries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import interp
from interp.analysis import MLP, Head, prob, run_ablated
from interp.analysis.generation import generate_ablated

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the checkout's `apps` package, not the tests folder of that name

from apps.model_view import Ablation, ModelView  # noqa: E402

PROMPT = "The capital of France is"
REFERENCE = ("The capital of Germany is", "The capital of Italy is", "The capital of Spain is")


@pytest.fixture(scope="module")
def model():
    return interp.load().requires_grad_(False)


@pytest.fixture(scope="module")
def view(model):
    return ModelView(model)


@torch.no_grad()
def test_residual_decomposition_sums_to_the_final_residual(model, view):
    df = view.residual_decomposition(PROMPT, pos=-1)
    n = model.cfg.n_layers
    assert df["component"].tolist() == ["embed", "pos_embed"] + [
        f"{i}_{p}_out" for i in range(n) for p in ("attn", "mlp")
    ]
    _, cache = model.run_with_cache(PROMPT)
    final = cache["resid_post", n - 1][0, -1].double()
    mlp_last = cache["mlp_out", n - 1][0, -1].double()
    assert df["norm"].iloc[-1] == pytest.approx(float(mlp_last.norm()), rel=1e-5)
    assert df["share"].sum() == pytest.approx(1.0, abs=1e-5)  # the parts add up to the residual
    assert df["share"].iloc[-1] == pytest.approx(float(mlp_last @ final / final.norm() ** 2), abs=1e-5)


@torch.no_grad()
def test_predictions_and_continuations_under_an_ablation(model, view):
    ablation = Ablation((Head(1, 2, (3, 4)), MLP(0, (3, 4))), "mean", REFERENCE)
    paris = model.to_single_token(" Paris")
    expected = run_ablated(model, PROMPT, list(ablation.sites), prob(paris), "mean", list(REFERENCE)).metric
    assert float(view.next_token_probs(PROMPT, ablation)[paris]) == pytest.approx(expected, abs=1e-5)
    plain, ablated = view.continuation(PROMPT, ablation, 4)
    start = len(model.to_string(model.to_tokens(PROMPT)[0]))
    assert ablated == generate_ablated(model, PROMPT, ablation.sites, 4, "mean", REFERENCE)[start:]
    assert (
        view.compare(PROMPT, Ablation(), None)["p_after"].tolist()
        == view.compare(PROMPT, Ablation(), None)["p_before"].tolist()
    )


@torch.no_grad()
def test_attention_is_the_models_pattern(model, view):
    _, cache = model.run_with_cache(PROMPT)
    torch.testing.assert_close(
        torch.from_numpy(view.attention(PROMPT, 2)), cache["pattern", 2][0], atol=1e-6, rtol=0
    )


def test_the_view_needs_no_streamlit():
    code = (
        "import sys, apps.model_view; assert 'streamlit' not in sys.modules, 'model_view imported streamlit'"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_views_reach_interp_only_through_the_backend_and_the_view():
    for path in sorted((REPO / "apps" / "views").glob("*.py")):
        ours = {m for m in _imports(path) if m.split(".")[0] in ("apps", "interp")}
        assert not any(m.split(".")[0] == "interp" for m in ours), f"{path.name} imports {ours}"
        assert ours <= {"apps", "apps.backend", "apps.model_view", "apps.state", "apps.views"}, path.name
