"""`distill retrieve-data`: rank existing datasets for a task; convert a chosen one to extra data.

    distill retrieve-data --task task.toml                    # top 5 from the shipped catalog
    distill retrieve-data --task task.toml --choose imdb --input-column text \\
        --output-column label --weight 0.5 --run-dir run     # -> run/data/extra/imdb.jsonl
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from common.paths import cache_dir
from distill.configs import add_config_args, build_config, config_error
from distill.errors import UserError
from distill.retrieval.config import RetrieveDataConfig
from distill.retrieval.query import add_task_arguments, check_online, task_query_parts

HELP = "rank existing datasets for the task (BM25 + MiniLM); --choose one to add it as extra training data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of this subcommand."""
    add_task_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the ranking as JSON")
    add_config_args(parser, RetrieveDataConfig)


def run(args: argparse.Namespace) -> int:
    """Rank, print; with --choose, convert and register the chosen dataset."""
    from distill.retrieval.ranking import MiniLMEmbedder, build_query

    cfg = build_config(RetrieveDataConfig, None, args, source="command line")
    _, instruction, pairs = task_query_parts(args)
    entries = _catalog(cfg)
    if cfg.choose:
        return _choose(cfg, entries)
    from distill.retrieval.datasets import rank_datasets

    embedder = MiniLMEmbedder() if cfg.bm25_weight < 1.0 else None
    query = build_query(instruction, pairs)
    rows = rank_datasets(
        query, entries, embedder=embedder, bm25_weight=cfg.bm25_weight, top_k=cfg.top_k
    )
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.json else ranking_table(rows))
    if not args.json:
        print(
            "\nadd one: distill retrieve-data ... --choose NAME --input-column COL --output-column COL [--weight W]"
        )
    return 0


def _catalog(cfg: RetrieveDataConfig) -> list[Any]:
    from distill.retrieval import datasets as ds

    check_online(cfg.online)
    try:
        if cfg.catalog:
            return ds.load_catalog(Path(cfg.catalog))
        if cfg.online:
            return ds.hub_catalog(
                cache_dir() / "hub_datasets.jsonl",
                limit=cfg.hub_limit,
                refresh=cfg.refresh,
                endpoint=cfg.hub_endpoint,
            )
        return ds.load_catalog(ds.shipped_catalog_path())
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"--catalog: {exc}") from None
    except ds.HubError as exc:
        raise UserError(f"--online: {exc}; drop --online to use the shipped catalog") from None


def _choose(cfg: RetrieveDataConfig, entries: list[Any]) -> int:
    from distill.retrieval import datasets as ds

    check_online(cfg.online)
    try:
        entry = ds.find_entry(entries, cfg.choose or "")
        rows_iter = ds.iter_rows(entry, split=cfg.split, online=cfg.online)
        rows, skipped = ds.convert_rows(
            rows_iter, cfg.input_column or "", cfg.output_column or "", max_rows=cfg.max_rows
        )
    except ValueError as exc:  # "input_column: ..." names its flag; the rest is --choose's
        raise config_error(exc, fallback="--choose") from None
    except (OSError, ds.HubError) as exc:  # a missing local file, a failed hub download
        raise UserError(f"--choose: {exc}") from None
    source = {
        "dataset": entry.name, "hub_id": entry.hub_id, "local": str(entry.path) if entry.path else None,
        "input_column": cfg.input_column, "output_column": cfg.output_column,
        "split": cfg.split or entry.split, "skipped": skipped, "license": entry.license,
    }  # fmt: skip
    data_dir = Path(cfg.run_dir) / "data"
    index = ds.add_extra_data(data_dir, entry.name, rows, weight=cfg.weight, source=source)
    item = next(s for s in index["sources"] if s["dataset"] == entry.name)
    print(
        f"wrote {item['path']}: {len(rows)} examples ({skipped} rows skipped: missing or empty column)"
    )
    print(
        f"registered in {data_dir / 'extra_data.json'} with weight {cfg.weight:g} (licence: {entry.license})"
    )
    print(f"train with it: distill train ... --extra-data {item['path']}:{cfg.weight:g}")
    return 0


def ranking_table(rows: list[dict[str, Any]]) -> str:
    """The ranking as a Markdown table."""
    lines = [
        "| rank | dataset | score | bm25 | cosine | size | licence | columns |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cols = ", ".join(r["columns"])
        lines.append(
            f"| {r['rank']} | {r['name']} | {r['score']:.3f} | {r['bm25']:.3f} | {r['cosine']:.3f} "
            f"| {r['size'] if r['size'] is not None else '?'} | {r['license']} | {cols} |"
        )
    return "\n".join(lines)
