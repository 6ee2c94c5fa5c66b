"""Dataset retrieval: rank catalog datasets for a task, and turn a chosen one into extra data.

A catalog is JSON Lines, one dataset a line:
    {"name": "imdb", "description": "...", "columns": ["text", "label"], "size": 25000,
     "license": "other", "tasks": ["text-classification"], "hub_id": "stanfordnlp/imdb",
     "path": "local/file.jsonl", "config": null, "split": "train"}
`name` and `description` are required; `path` (JSONL, JSON list, CSV/TSV or a
`datasets.save_to_disk` directory, relative to the catalog file) makes a dataset usable offline.
The package ships a small catalog of well-known hub datasets (sizes are approximate train-split
row counts; check each card before use).
"""

from __future__ import annotations

import csv
import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from common.files import atomic_write_json, atomic_write_jsonl
from distill.retrieval.ranking import Embedder, hybrid_rank

HUB_CACHE_MAX_AGE_S = 7 * 24 * 3600


class HubError(RuntimeError):
    """The hub could not be reached or refused a listing or download (message says why)."""


def call_hub(what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a hub call, turning its many failure types (httpx, HTTP status, datasets) into one.

    The hub client raises transport errors of its own HTTP library that share no base class
    with OSError, so a narrower except would let a network failure end as a traceback.
    """
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        raise HubError(f"could not {what} ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class DatasetEntry:
    """One catalog line."""

    name: str
    description: str
    columns: tuple[str, ...] = ()
    size: int | str | None = None
    license: str = "unknown"
    tasks: tuple[str, ...] = ()
    hub_id: str | None = None
    path: Path | None = None  # resolved against the catalog file's folder
    config: str | None = None
    split: str = "train"
    extra: dict[str, Any] = field(default_factory=dict)

    def document(self) -> str:
        """The text BM25 and the embedding see for this dataset."""
        cols = ", ".join(self.columns)
        tasks = ", ".join(t.replace("-", " ") for t in self.tasks)
        return f"{self.name.replace('_', ' ')}. {self.description} Tasks: {tasks}. Columns: {cols}."


def shipped_catalog_path() -> Path:
    """The small catalog inside the package (offline default)."""
    return Path(str(resources.files("distill.retrieval") / "catalogs" / "datasets.jsonl"))


def load_catalog(path: Path) -> list[DatasetEntry]:
    """Read a catalog file; ValueError names the file and line of any bad entry."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: catalog file not found")
    entries = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            entries.append(_entry(line, f"{path}:{lineno}", path.parent))
    if not entries:
        raise ValueError(f"{path}: the catalog is empty")
    return entries


def _entry(line: str, where: str, base: Path) -> DatasetEntry:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: each line must be a JSON object")
    for key in ("name", "description"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ValueError(f"{where}: '{key}' must be a non-empty string")
    known = {
        "name",
        "description",
        "columns",
        "size",
        "license",
        "tasks",
        "hub_id",
        "path",
        "config",
        "split",
    }
    path = row.get("path")
    return DatasetEntry(
        name=row["name"],
        description=row["description"],
        columns=tuple(str(c) for c in row.get("columns") or ()),
        size=row.get("size"),
        license=str(row.get("license") or "unknown"),
        tasks=tuple(str(t) for t in row.get("tasks") or ()),
        hub_id=row.get("hub_id"),
        path=(base / path).resolve() if path else None,
        config=row.get("config"),
        split=str(row.get("split") or "train"),
        extra={k: v for k, v in row.items() if k not in known},
    )


def rank_datasets(
    query: str,
    entries: list[DatasetEntry],
    *,
    embedder: Embedder | None,
    bm25_weight: float = 0.3,
    top_k: int = 5,
) -> list[dict[str, Any]]:
    """The `top_k` datasets for `query`, best first, with their scores and catalog fields."""
    scored = hybrid_rank(
        query, [e.document() for e in entries], embedder=embedder, bm25_weight=bm25_weight
    )
    out = []
    for rank, s in enumerate(scored[:top_k], start=1):
        e = entries[s.index]
        out.append({
            "rank": rank, "name": e.name, "score": round(s.score, 4), "bm25": round(s.bm25, 4),
            "cosine": round(s.cosine, 4), "description": e.description, "columns": list(e.columns),
            "size": e.size, "license": e.license, "hub_id": e.hub_id,
            "local": str(e.path) if e.path else None,
        })  # fmt: skip
    return out


def find_entry(entries: list[DatasetEntry], name: str) -> DatasetEntry:
    """The entry called `name` (or with that hub id); ValueError lists close names."""
    for e in entries:
        if name in (e.name, e.hub_id):
            return e
    import difflib

    close = difflib.get_close_matches(name, [e.name for e in entries], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"no dataset named '{name}' in the catalog{hint}")


# --- the hub catalog (online) -----------------------------------------------------------------


def hub_catalog(
    cache_path: Path, *, limit: int = 1000, refresh: bool = False, endpoint: str | None = None
) -> list[DatasetEntry]:
    """The `limit` most downloaded hub datasets with card data, cached as a catalog file.

    A cache younger than a week is reused (the hub's listing changes slowly and the call takes
    tens of seconds); `refresh` forces a new listing.
    """
    fresh = cache_path.is_file() and time.time() - cache_path.stat().st_mtime < HUB_CACHE_MAX_AGE_S
    if not fresh or refresh:
        from huggingface_hub import HfApi

        expand = ["cardData", "description", "downloads", "tags"]
        infos = call_hub(
            "list hub datasets",
            lambda: list(
                HfApi(endpoint=endpoint).list_datasets(sort="downloads", limit=limit, expand=expand)
            ),
        )
        atomic_write_jsonl(cache_path, (hub_entry_row(info) for info in infos))
    return load_catalog(cache_path)


def hub_entry_row(info: Any) -> dict[str, Any]:
    """A catalog row from a `huggingface_hub` DatasetInfo (card data may be missing)."""
    card = info.card_data.to_dict() if info.card_data is not None else {}
    description = (info.description or card.get("pretty_name") or info.id).strip()
    tags = [t for t in (info.tags or []) if t.startswith("task_categories:")]
    return {
        "name": info.id,
        "hub_id": info.id,
        "description": re.sub(r"\s+", " ", description)[:1000],
        "columns": _card_columns(card),
        "size": ", ".join(_as_list(card.get("size_categories"))) or None,
        "license": ", ".join(_as_list(card.get("license"))) or "unknown",
        "tasks": [t.split(":", 1)[1] for t in tags] or _as_list(card.get("task_categories")),
        "downloads": info.downloads,
    }


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _card_columns(card: dict[str, Any]) -> list[str]:
    """Feature names from the card's `dataset_info` (a dict, or a list with one per config)."""
    info = card.get("dataset_info")
    first = info[0] if isinstance(info, list) and info else info
    if not isinstance(first, dict):
        return []
    return [f["name"] for f in first.get("features") or [] if isinstance(f, dict) and "name" in f]


# --- converting a chosen dataset --------------------------------------------------------------


def iter_rows(
    entry: DatasetEntry, *, split: str | None = None, online: bool = False
) -> Iterator[dict[str, Any]]:
    """Rows of the entry's local file or folder, or of the hub dataset when `online`."""
    split = split or entry.split
    if entry.path is not None:
        yield from _local_rows(entry.path, split)
    elif entry.hub_id and online:
        import datasets

        yield from call_hub(
            f"download {entry.hub_id}",
            datasets.load_dataset,
            entry.hub_id,
            entry.config,
            split=split,
        )
    elif entry.hub_id:
        raise ValueError(
            f"dataset '{entry.name}' is on the hub ({entry.hub_id}) and no local 'path' is in the "
            "catalog; pass --online to download it"
        )
    else:
        raise ValueError(f"dataset '{entry.name}' has neither a local 'path' nor a 'hub_id'")


def _local_rows(path: Path, split: str) -> Iterator[dict[str, Any]]:
    if path.is_dir():
        import datasets

        ds = datasets.load_from_disk(str(path))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"{path}: no split '{split}' (available: {', '.join(ds)})")
            ds = ds[split]
        yield from ds
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: dataset file not found")
    elif path.suffix in (".csv", ".tsv"):
        with open(path, newline="", encoding="utf-8") as fh:
            yield from csv.DictReader(fh, delimiter="\t" if path.suffix == ".tsv" else ",")
    elif path.suffix == ".json" and path.read_text(encoding="utf-8").lstrip().startswith("["):
        yield from json.loads(path.read_text(encoding="utf-8"))
    else:
        yield from _jsonl_rows(path)


def _jsonl_rows(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None


def column_value(row: dict[str, Any], column: str) -> str | None:
    """The text in `column`; dotted paths reach into nested fields (`answers.text`, and
    `translation.fr`); a list gives its first item. None when missing or empty."""
    value: Any = row
    for part in column.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def convert_rows(
    rows: Iterator[dict[str, Any]],
    input_column: str,
    output_column: str,
    *,
    max_rows: int | None = None,
) -> tuple[list[dict[str, str]], int]:
    """(input/output rows, rows skipped for a missing or empty value). A column that no row has
    is an error naming the columns that exist."""
    out: list[dict[str, str]] = []
    skipped = 0
    seen_columns: set[str] = set()
    for row in rows:
        if max_rows is not None and len(out) >= max_rows:
            break
        seen_columns.update(row)
        x, y = column_value(row, input_column), column_value(row, output_column)
        if x is None or y is None:
            skipped += 1
            continue
        out.append({"input": x, "output": y})
    if not out:
        for flag, col in (("input_column", input_column), ("output_column", output_column)):
            if col.split(".")[0] not in seen_columns:
                raise ValueError(
                    f"{flag}: no column '{col}' (available: {', '.join(sorted(seen_columns))})"
                )
        raise ValueError(f"no row has both '{input_column}' and '{output_column}'")
    return out, skipped


def add_extra_data(
    data_dir: Path, name: str, rows: list[dict[str, str]], *, weight: float, source: dict[str, Any]
) -> dict[str, Any]:
    """Write `data_dir/extra/<name>.jsonl` and register it in `data_dir/extra_data.json`.

    extra_data.json holds `extra_data`: the `path:weight` items that students' TrainConfig
    `extra_data` setting takes (absolute paths, so the trainer can run from any folder), and
    `sources` with where each file came from. Choosing the same name again replaces its entry.
    """
    safe = re.sub(r"[^\w.-]+", "_", name).strip("._") or "dataset"
    path = (data_dir / "extra" / f"{safe}.jsonl").resolve()
    atomic_write_jsonl(path, rows)
    index_path = data_dir / "extra_data.json"
    index = json.loads(index_path.read_text(encoding="utf-8")) if index_path.is_file() else {}
    sources = [s for s in index.get("sources", []) if s.get("name") != safe]
    sources.append({"name": safe, "path": str(path), "weight": weight, "rows": len(rows), **source})
    index = {"extra_data": [f"{s['path']}:{s['weight']:g}" for s in sources], "sources": sources}
    atomic_write_json(index_path, index)
    return index
