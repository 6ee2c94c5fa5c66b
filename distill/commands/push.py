"""`distill push`: upload a run's data, model or ONNX folder, card included, to a hub repo.

    distill push runs/dates --what data --repo me/dates-data            # a private dataset repo
    distill push runs/dates --what onnx --repo me/dates-onnx --public
    distill push runs/dates --what model --repo me/dates --dry-run      # list files, no network
    HF_ENDPOINT=https://hub.example.org distill push runs/dates --what model --repo team/dates

The token is read from $HF_TOKEN only. Exit 2: bad input or a refusal the user must fix first
(401, 403, 404 and other 4xx); exit 1: the hub or the network failed and a rerun may succeed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from distill.configs import add_config_args, build_config
from distill.push import PushConfig, PushPlan

HELP = "upload a run's data, model or onnx folder (with its card) to a Hugging Face hub repo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory, then PushConfig's flags."""
    parser.add_argument(
        "run_dir", metavar="RUN", help="run directory of `distill run` (data/, model/, onnx/)"
    )
    add_config_args(parser, PushConfig, title="push settings (token: $HF_TOKEN, never a flag)")


def run(args: argparse.Namespace) -> int:
    """Plan (checks every input), then print the plan (--dry-run) or push and print the URLs."""
    from distill.push import PushFailed, plan_push, push, token_from_env

    cfg = build_config(PushConfig, None, args, source="command line")
    plan = plan_push(Path(args.run_dir), cfg)
    if cfg.dry_run:
        print(describe(plan))
        return 0
    token = token_from_env()
    print(
        f"pushing {len(plan.files)} files ({_size(plan.total_bytes)}) to {plan.where}", flush=True
    )
    try:
        result = push(plan, token)
    except PushFailed as exc:
        print(f"distill push: error: {exc}", file=sys.stderr)
        return 1
    print(f"pushed {plan.folder} to {result.repo_url}\n  commit: {result.commit_url}")
    return 0


def describe(plan: PushPlan) -> str:
    """The dry run's report: target, then one line per file with its size."""
    lines = [
        f"dry run: would push {plan.folder} to {plan.where}",
        f'  commit: "{plan.commit_message}"',
    ]
    width = max((len(f"{size:,}") for _, size in plan.files), default=1)
    lines += [f"  {size:>{width},}  {name}" for name, size in plan.files]
    lines.append(f"{len(plan.files)} files, {_size(plan.total_bytes)}")
    if plan.left_out:
        lines.append(f"left out (working files, not the artefact): {', '.join(plan.left_out)}")
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n:,} bytes"
