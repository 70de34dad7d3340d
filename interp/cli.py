"""The `interp` command line: `interp params gpt2`, `interp params --all`, `interp demo`.

Each subcommand is a `register_<name>(subparsers)` function that adds its parser and sets `func`
(taking the parsed Namespace, returning an exit code); to add one, write it and list it in COMMANDS.
Heavy imports (torch, pandas, interp modules that pull them in) happen inside the command functions,
so `interp --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

# What add_subparsers() returns; each register_<name> function adds one parser to it.
Subparsers = argparse._SubParsersAction


# --- params -------------------------------------------------------------------------------------------


def _params(args: argparse.Namespace) -> int:
    from interp.params import PRESETS, mlp_share, param_breakdown

    if args.all:
        print(f"{'preset':<12} {'params':>15} {'MLP share':>10} {'MLP share (non-emb)':>20}")
        for name in PRESETS:
            df = param_breakdown(name)
            total = int(df["params"].iloc[-1])
            share, share_ne = mlp_share(df), mlp_share(df, non_embedding=True)
            print(f"{name:<12} {total:>15,} {share:>10.1%} {share_ne:>20.1%}")
        return 0

    if args.name is None:
        print("error: give a preset NAME or --all", file=sys.stderr)
        return 2
    try:
        df = param_breakdown(args.name)
    except ValueError as e:  # unknown preset: the message lists the available ones
        print(f"error: {e}", file=sys.stderr)
        return 2

    print(f"{args.name}: parameters by component")
    print(f"{'component':<12} {'params':>15} {'share':>7}")
    for row in df.itertuples(index=False):
        print(f"{row.component:<12} {row.params:>15,} {row.share:>7.1%}")
    print(
        f"MLP share: {mlp_share(df, non_embedding=True):.1%} of non-embedding parameters "
        f"(the 'FFNs hold about 2/3 of the parameters' claim); {mlp_share(df):.1%} of all parameters"
    )
    return 0


def register_params(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("params", help="parameter counts by component for a preset model")
    p.add_argument("name", nargs="?", help="preset name, e.g. gpt2, llama-3-8b")
    p.add_argument("--all", action="store_true", help="one summary line per preset instead")
    p.set_defaults(func=_params)


# --- demo ---------------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from interp.demo import main as demo_main

    return demo_main(args)


def register_demo(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "demo", help="one prompt through the embedded model: predictions, ΔE, lens, ablation"
    )
    p.add_argument(
        "--model", default=None, help="embedded name, local folder or hub id (default: tiny-facts-2)"
    )
    p.add_argument("--prompt", default=None, help='default: "The capital of France is"')
    p.set_defaults(func=_demo)


# --- run ----------------------------------------------------------------------------------------------

# Experiment name -> module. `apps` and `experiments` are packages installed beside `interp` (see
# pyproject.toml), so both commands work from any working directory, not only from a checkout.
EXPERIMENTS = {
    "context-injection": "experiments.context_injection",
    "factual-recall": "experiments.factual_recall",
}


def _run(args: argparse.Namespace) -> int:
    """Run experiments (modules of the `experiments` package) with the remaining arguments (--quick, ...)."""
    import importlib

    names = list(EXPERIMENTS) if args.experiment == "all" else [args.experiment]
    for name in names:
        rest = list(args.rest)
        if args.experiment == "all" and "--out" in rest[:-1]:  # one folder each, or reports overwrite
            i = rest.index("--out") + 1
            rest[i] = str(Path(rest[i]) / name)
        code = importlib.import_module(EXPERIMENTS[name]).main(rest)
        if code:
            return int(code)
    return 0


def register_run(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("run", help="run an experiment: " + ", ".join([*EXPERIMENTS, "all"]))
    p.add_argument("experiment", choices=[*EXPERIMENTS, "all"])
    p.add_argument(
        "rest", nargs=argparse.REMAINDER, help="passed to the experiment (--quick, --model, --out)"
    )
    p.set_defaults(func=_run)


# --- dashboard ----------------------------------------------------------------------------------------


def _dashboard(args: argparse.Namespace) -> int:
    import importlib.util
    import os

    spec = importlib.util.find_spec("apps.dashboard")  # the page's file: `streamlit run` takes a path
    if spec is None or spec.origin is None:
        print("error: the apps package is not installed (run bin/setup)", file=sys.stderr)
        return 2
    cmd = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        spec.origin,
        "--server.headless",
        str(args.headless).lower(),
    ]
    # The page reads its model allowlist after `--` (apps/backend.py: allowed folders, hub ids).
    extra = ["--", *(["--models", *args.models] if args.models else []), *(["--allow-hub"] * args.allow_hub)]
    # Streamlit replaces this process, so a signal sent to `interp dashboard` (Ctrl-C, a test's terminate)
    # reaches the server itself; a child process would outlive its parent and keep the port.
    os.execv(sys.executable, [*cmd, "--server.port", str(args.port), *extra])
    return 0  # not reached


def register_dashboard(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("dashboard", help="open the Streamlit dashboard on the embedded model")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--headless", action="store_true", help="do not open a browser")
    p.add_argument("--models", nargs="+", metavar="DIR", help="model folders a link may load (and below)")
    p.add_argument("--allow-hub", action="store_true", help="let links load Hugging Face hub ids")
    p.set_defaults(func=_dashboard)


# ------------------------------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[Subparsers], None]] = {
    "params": register_params,
    "demo": register_demo,
    "run": register_run,
    "dashboard": register_dashboard,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="interp", description="Mechanistic interpretability toolkit.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS.values():
        register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
