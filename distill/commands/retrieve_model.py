"""`distill retrieve-model`: rank seq2seq students for a task.

distill retrieve-model --task task.toml                     # shipped catalog, instruction query
distill retrieve-model --task task.toml --teacher openai:gpt-4o-mini   # HyDE query
distill retrieve-model --task task.toml --local run/model --max-size-gb 1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distill.configs import add_config_args, build_config
from distill.errors import UserError
from distill.retrieval.config import RetrieveModelConfig

if TYPE_CHECKING:
    from distill.task import TaskSpec

HELP = "rank seq2seq students for the task (HyDE + BM25 + MiniLM, size limit, popularity prior)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of this subcommand."""
    from distill.retrieval.query import add_task_arguments
    from teachers.config import TeacherConfig

    add_task_arguments(parser)
    parser.add_argument(
        "--local",
        action="append",
        default=[],
        metavar="DIR",
        help="also rank this local model folder (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON")
    add_config_args(parser, RetrieveModelConfig)
    add_config_args(parser, TeacherConfig)


def run(args: argparse.Namespace) -> int:
    """Build the query (HyDE when a teacher is set), rank, print."""
    from distill.retrieval.models import rank_models
    from distill.retrieval.query import task_query_parts
    from distill.retrieval.ranking import MiniLMEmbedder, build_query

    cfg = build_config(RetrieveModelConfig, None, args, source="command line")
    spec, instruction, pairs = task_query_parts(args)
    entries = _candidates(cfg, args.local)
    hyde_text = _hyde(cfg, spec, args, instruction, pairs)
    # HyDE: the task query and the hypothetical description are scored and averaged.
    queries = [build_query(instruction, pairs)] + ([hyde_text.strip()] if hyde_text else [])
    embedder = MiniLMEmbedder() if cfg.bm25_weight < 1.0 else None
    rows, excluded = rank_models(
        queries, entries, embedder=embedder, max_size_gb=cfg.max_size_gb,
        popularity_weight=cfg.popularity_weight, bm25_weight=cfg.bm25_weight, top_k=cfg.top_k,
    )  # fmt: skip
    if args.json:
        print(
            json.dumps(
                {"queries": queries, "hyde": hyde_text, "ranking": rows, "excluded": excluded},
                indent=2,
            )
        )
        return 0
    if hyde_text:
        print(f"HyDE description from the teacher: {hyde_text.strip()}\n")
    print(model_table(rows))
    for ex in excluded:
        print(f"excluded {ex['name']}: {ex['reason']}")
    if rows:
        print(f"\nuse one: distill train ... --student {rows[0]['student']}")
    return 0


def _candidates(cfg: RetrieveModelConfig, local_dirs: list[str]) -> list[Any]:
    from common.paths import cache_dir
    from distill.retrieval import models as m
    from distill.retrieval.datasets import HubError
    from distill.retrieval.query import check_online

    check_online(cfg.online)
    try:
        entries = m.load_model_catalog(
            Path(cfg.catalog) if cfg.catalog else m.shipped_catalog_path()
        )
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"--catalog: {exc}") from None
    if cfg.online:
        try:
            hub = m.hub_model_catalog(
                cache_dir() / "hub_models.json",
                limit=cfg.hub_limit,
                refresh=cfg.refresh,
                endpoint=cfg.hub_endpoint,
            )
        except HubError as exc:
            raise UserError(f"--online: {exc}; drop --online") from None
        known = {e.name for e in entries}
        entries += [e for e in hub if e.name not in known]
    for d in local_dirs:
        try:
            entries.append(m.local_model_entry(Path(d)))
        except (ValueError, FileNotFoundError) as exc:
            raise UserError(f"--local: {exc}") from None
    return entries


def _hyde(
    cfg: RetrieveModelConfig,
    spec: TaskSpec | None,
    args: argparse.Namespace,
    instruction: str,
    pairs: list[tuple[str, str]],
) -> str | None:
    """The teacher's hypothetical model description, or None when HyDE is off.

    Default (no --hyde/--no-hyde): on only when a teacher was chosen explicitly (flag or the
    task's [teacher] table), so a plain run never starts the embedded LLM just to rank models.
    """
    from distill.retrieval.models import hyde_messages
    from distill.stages import stage_config
    from distill.teacher_chat import run_with_teacher

    explicit = getattr(args, "teacher", None) is not None or bool(spec and spec.table("teacher"))
    if not (cfg.hyde if cfg.hyde is not None else explicit):
        return None
    teacher_cfg = stage_config("teacher", spec, args)
    print(
        f"asking the teacher ({teacher_cfg.teacher}) for a model description (HyDE)",
        file=sys.stderr,
    )
    text = run_with_teacher(teacher_cfg, lambda chat: chat(hyde_messages(instruction, pairs), None))
    if not text.strip():
        raise UserError(
            f"teacher ({teacher_cfg.teacher}): empty HyDE description; rerun with --no-hyde"
        )
    return text


def model_table(rows: list[dict[str, Any]]) -> str:
    """The ranking as a Markdown table."""
    lines = [
        "| rank | model | score | fit | bm25 | cosine | popularity | size GB | available | --student |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        size = f"{r['size_gb']:.2f}" if r["size_gb"] is not None else "?"
        lines.append(
            f"| {r['rank']} | {r['name']} | {r['score']:.3f} | {r['fit']:.3f} | {r['bm25']:.3f} | {r['cosine']:.3f} "
            f"| {r['popularity']:.3f} | {size} | {r['available']} | {r['student']} |"
        )
    return "\n".join(lines)
