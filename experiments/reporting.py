"""Shared plumbing for the experiment scripts: arguments, clear usage errors, CSVs, plots and report.md.

Every experiment (`experiments/*.py`, also run by `interp run NAME`) parses the same core arguments
(`--out`, `--model`, `--lang`, `--quick`, `--seed`), writes tidy CSVs, then builds its report *from the CSVs it just
wrote*, so a number in report.md is always one that can be found in a CSV. Numbers are formatted with
`fmt` (3 decimals) everywhere, and `parse_md_tables` reads the report's tables back for the tests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interp.embedded import DEFAULT

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from experiments.worlds import World
    from interp.transformer import HookedTransformer


class UsageError(Exception):
    """A bad argument or an empty selection: reported as `error: ...` with exit code 2, no traceback."""


def base_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"interp run {name}", description=description)
    p.add_argument("--out", type=Path, default=Path("runs") / name, help=f"output folder (runs/{name}/)")
    p.add_argument(
        "--model", default=None, help=f"embedded name, local folder or hub id (default: {DEFAULT})"
    )
    p.add_argument(
        "--lang",
        choices=("en", "zh"),
        default=None,
        help="the world's language: en (default) or zh (tiny-facts-2 is bilingual)",
    )
    p.add_argument("--quick", action="store_true", help="small settings for CI (seconds)")
    p.add_argument("--seed", type=int, default=0, help="seed for sampling prompts, noise and probes")
    return p


def run_main(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, body: Callable[[argparse.Namespace], Path]
) -> int:
    """Parse, run `body(args)` (which returns the report path), and turn usage errors into exit code 2.

    argparse exits through SystemExit; we return its code instead, since `interp run` calls main() in-process.
    Torch runs single-threaded here: the ops are tiny and a second thread mostly adds contention.
    """
    import torch

    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as e:
        return int(e.code or 0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        report = body(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(f"report: {Path(report).resolve()}")
    return 0


def output_dir(path: Path) -> Path:
    """Create `path` and prove it is writable now, before minutes of compute are spent."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as e:
        raise UsageError(f"output folder {path} is not writable ({e.strerror or e})") from None
    return path


def world(args: argparse.Namespace) -> World:
    """The world the experiment draws its prompts from (`experiments.worlds`), by --model and --lang."""
    from experiments.worlds import WorldError, world_for

    try:
        return world_for(args.model, args.lang)
    except WorldError as e:
        raise UsageError(str(e)) from None


def load_model(name: str | None) -> HookedTransformer:
    import interp

    try:
        model = interp.load(name)
    except interp.LoadError as e:
        raise UsageError(f"cannot load model {name!r}: {e}") from None
    if model.tokenizer is None:
        raise UsageError(f"model {name!r} has no tokenizer; the experiments build prompts from text")
    return model.eval()


def read_lines(path: Path, what: str) -> list[str]:
    """Non-empty, non-comment lines of a text file; a missing or empty file is a usage error."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"cannot read {what} file {path}: {e.strerror or e}") from None
    lines = [ln.rstrip("\n") for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise UsageError(f"{what} file {path} is empty: nothing to run on")
    return lines


def csv_list(value: str | None) -> list[str] | None:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


# ---- scaling out: per-fact sweeps on local or Ray workers -------------------------------------------------


def add_scale_arguments(p: argparse.ArgumentParser) -> None:
    """--workers, --backend, --address, --resume: how the per-prompt sweeps run (interp.scale.Pool)."""
    p.add_argument(
        "--backend", choices=("local", "ray"), default="local", help="in-process (default) or Ray workers"
    )
    p.add_argument("--workers", type=int, default=1, help="Ray workers, each with its own model replica")
    p.add_argument(
        "--address", default=None, help="an existing Ray cluster to join (default: start a local one)"
    )
    p.add_argument("--resume", action="store_true", help="skip the shards already written under OUT/shards/")


def open_pool(args: argparse.Namespace, model: HookedTransformer) -> Any:
    """The pool the experiment's per-prompt sweeps run on: the loaded model in-process, or Ray workers that
    each load `--model` from the same source (the same torch thread count, 1, everywhere)."""
    from interp.scale import Pool

    if args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    progress = sys.stderr.isatty()
    if args.backend == "local":
        return Pool(model, progress=progress)
    try:
        return Pool(args.model, backend="ray", workers=args.workers, address=args.address, progress=progress)
    except ImportError as e:
        raise UsageError(str(e)) from None


def sweep_rows(
    pool: Any, task: Any, data: pd.DataFrame, out: Path, name: str, args: argparse.Namespace
) -> pd.DataFrame:
    """`pool.run` with its shards under OUT/shards/NAME; shards that failed every attempt stop the run."""
    df = pool.run(task, data, out=out / "shards" / name, resume=args.resume, desc=name)
    if df.attrs["failed"]:
        lost = "; ".join(f"shard {f.shard} (rows {list(f.rows)}): {f.error}" for f in df.attrs["failed"])
        raise UsageError(
            f"{name}: shards failed on every attempt: {lost}. Rerun with --resume to retry only them"
        )
    return df


# ---- numbers, tables, reports ---------------------------------------------------------------------------


def fmt(x: Any, digits: int = 3) -> str:
    """One formatting rule for every number in a report: integers as they are, reals with 3 decimals.

    Missing values (NaN, None) print as "", strings that hold a number are formatted like that number.
    """
    import numbers

    if x is None or isinstance(x, bool) or type(x).__name__ == "bool_":
        return "" if x is None else str(bool(x))
    if isinstance(x, str):
        try:
            return x if x.lstrip("-").isdigit() else fmt(float(x), digits)
        except ValueError:
            return x
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Real):
        if x != x:
            return ""
        text = f"{float(x):.{digits}f}"
        return text[1:] if text.startswith("-") and not text.strip("-0.") else text  # no "-0.000"
    return str(x)


def md_table(df: pd.DataFrame, source: str) -> str:
    """A markdown table of the whole DataFrame, tagged with the CSV it came from (see `parse_md_tables`)."""
    import pandas as pd

    df = df.copy()
    for col in df.columns:  # integer columns that picked up NaN (e.g. `head` of non-head rows) stay integers
        vals = df[col].dropna()
        if df[col].dtype.kind == "f" and len(vals) and bool((vals == vals.round()).all()):
            df[col] = df[col].astype("Int64")
    lines = [
        f"<!-- table: {source} -->",
        "| " + " | ".join(df.columns) + " |",
        "|" + "---|" * len(df.columns),
    ]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is pd.NA else fmt(v) for v in row) + " |")
    return "\n".join(lines)


def parse_md_tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Tables written by `md_table`, by source CSV name: rows of {column: cell text}."""
    tables: dict[str, list[dict[str, str]]] = {}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("<!-- table: "):
            continue
        source = line.removeprefix("<!-- table: ").removesuffix(" -->").strip()
        cols = [c.strip() for c in lines[i + 1].strip("|").split("|")]
        rows = []
        for row in lines[i + 3 :]:
            if not row.startswith("|"):
                break
            rows.append(dict(zip(cols, (c.strip() for c in row.strip().strip("|").split("|")), strict=True)))
        tables[source] = rows
    return tables


def write_csv(df: pd.DataFrame, out: Path, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """Write `df` with exactly the documented columns (in order) and read it back, as the report sees it."""
    import pandas as pd

    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise AssertionError(f"{name}: columns {missing} missing (have {list(df.columns)})")
    df[list(columns)].to_csv(out / name, index=False)
    return pd.read_csv(out / name)


def top(df: pd.DataFrame, column: str, k: int = 3) -> pd.DataFrame:
    """The k rows with the largest `column`."""
    return df.sort_values(column, ascending=False).head(k)


def first_layer(df: pd.DataFrame, column: str, threshold: float) -> int | None:
    """The lowest `layer` whose `column` reaches `threshold` (None if none does)."""
    hit = df[df[column] >= threshold]
    return int(hit["layer"].min()) if len(hit) else None


class Checks:
    """Rows of checks.csv: what was compared, the measured value, the criterion, and whether it holds."""

    columns = ("check", "value", "criterion", "agree")

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, check: str, value: Any, criterion: str, agree: bool) -> None:
        self.rows.append(
            dict(
                check=check, value="none" if value is None else value, criterion=criterion, agree=bool(agree)
            )
        )

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))


def write_report(
    out: Path,
    title: str,
    setup: str,
    findings: Sequence[str],
    sections: Sequence[tuple[str, pd.DataFrame, str]],
    checks: pd.DataFrame,
    definitions: Sequence[str],
    plots: Sequence[str],
) -> Path:
    """report.md: setup, findings, one table per (heading, DataFrame, source CSV), checks, definitions."""
    lines = [f"# {title}", "", setup, "", "## Findings", "", *findings]
    for heading, df, source in sections:
        lines += ["", f"### {heading}", "", md_table(df, source)]
    agree = f"{int(checks.agree.sum())} of {len(checks)} checks agree; each is computed from the CSVs above."
    lines += ["", "## Checks", "", agree, "", md_table(checks, "checks.csv"), "", "## Definitions", ""]
    lines += [f"- {d}" for d in definitions] + ["", "Plots: " + ", ".join(plots) + "."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# ---- plots ----------------------------------------------------------------------------------------------


# Latin glyphs from DejaVu, CJK ones from Noto (installed by bin/setup): matplotlib falls back per glyph.
FONT_FALLBACK = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans CJK JP"]


@contextmanager
def figure(path: Path, nrows: int = 1, ncols: int = 1, **kwargs: Any) -> Iterator[tuple[Figure, Any]]:
    """A figure saved to `path` (PNG) on exit.

    Built with matplotlib's object API and rendered by Agg: no pyplot, so no display is needed, the
    process-wide backend is left alone and nothing stays registered after the call.
    """
    import matplotlib
    from matplotlib.figure import Figure

    figsize = kwargs.pop("figsize", None)
    with matplotlib.rc_context({"font.family": FONT_FALLBACK}):  # text is laid out on draw: keep it open
        fig = Figure(figsize=figsize)
        yield fig, fig.subplots(nrows, ncols, **kwargs)
        fig.tight_layout()
        fig.savefig(path, dpi=110)


def env_summary(model: HookedTransformer, name: str | None) -> str:
    """One line naming the model and its shape, for a report's setup paragraph."""
    cfg = model.cfg
    return (
        f"model `{name or DEFAULT}`: {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, "
        f"d_mlp {cfg.d_mlp}"
    )


Series = tuple[str, Sequence[float], Sequence[float]]  # (label, x, y)


def line_panels(
    path: Path, panels: Sequence[tuple[str, str, Sequence[Series]]], refs: Sequence[float | None] = ()
) -> None:
    """One row of line plots: (title, x label, series) per panel; `refs` adds a dotted reference line."""
    from matplotlib.ticker import MaxNLocator

    with figure(path, 1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False) as (_, axes):
        for i, (ax, (title, xlabel, series)) in enumerate(zip(axes[0], panels, strict=True)):
            for label, x, y in series:
                ax.plot(list(x), list(y), marker="o", label=label)
            if i < len(refs) and refs[i] is not None:
                ax.axhline(refs[i], color="gray", ls=":", label="reference")
            ax.set(title=title, xlabel=xlabel)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are integers
            ax.legend(fontsize=7)


def heatmap_panels(
    path: Path,
    panels: Sequence[tuple[str, Any]],
    *,
    xlabel: str = "",
    ylabel: str = "",
    xticks: Sequence[str] | None = None,
    yticks: Sequence[str] | None = None,
    signed: bool = True,
) -> None:
    """Heatmaps (title, 2-D array) side by side; signed maps share a symmetric colour scale per panel."""
    import numpy as np

    with figure(path, 1, len(panels), figsize=(4.2 * len(panels), 3.8), squeeze=False) as (fig, axes):
        for ax, (title, grid) in zip(axes[0], panels, strict=True):
            grid = np.asarray(grid, dtype=float)
            top = float(np.nanmax(np.abs(grid))) or 1.0
            lim = (
                dict(vmin=-top, vmax=top, cmap="RdBu_r") if signed else dict(vmin=0, vmax=top, cmap="viridis")
            )
            im = ax.imshow(grid, aspect="auto", **lim)
            ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
            ax.set_xticks(
                range(grid.shape[1]),
                xticks or range(grid.shape[1]),
                fontsize=7,
                rotation=45 if xticks else 0,
                ha="right" if xticks else "center",
            )
            ax.set_yticks(range(grid.shape[0]), yticks or range(grid.shape[0]), fontsize=7)
            fig.colorbar(im, ax=ax, shrink=0.8)
