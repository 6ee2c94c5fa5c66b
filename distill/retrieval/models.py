"""Model retrieval: rank seq2seq students for a task (HyDE query, hybrid ranking, size limit,
popularity prior).

    final = fused(bm25, cosine) + popularity_weight * log10(1 + downloads) / log10(1 + max downloads)

The query is the instruction (plus demonstrations); with HyDE, a model description the teacher
writes for the task is a second query and the two scores are averaged: a description resembles
the catalog's descriptions more than a task instruction does (HyDE, Gao et al. 2022), and the
average keeps a weak teacher's description from overriding the task. Models above the size
limit (fp32 weights, default 3 GB as in Prompt2Model) are dropped and listed as excluded.
Offline the candidates are the shipped catalog (presets and well-known hub models, marked by
whether they are usable without the hub) plus local model folders.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from common.files import atomic_write_json, read_json
from distill.retrieval.datasets import HUB_CACHE_MAX_AGE_S, call_hub
from distill.retrieval.ranking import Embedder, hybrid_rank

# model_type values of encoder-decoder (seq2seq) architectures in transformers.
_SEQ2SEQ_TYPES_TEXT = (
    "t5 mt5 umt5 longt5 bart mbart marian pegasus pegasus_x led m2m_100 fsmt prophetnet "
    "blenderbot blenderbot-small encoder-decoder nllb-moe switch_transformers plbart "
    "bigbird_pegasus"
)
SEQ2SEQ_TYPES = frozenset(_SEQ2SEQ_TYPES_TEXT.split())
LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "de": "German", "ro": "Romanian", "es": "Spanish",
    "code": "source code", "multilingual": "multilingual (100 languages)",
}  # fmt: skip
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".onnx")


@dataclass(frozen=True)
class ModelEntry:
    """One candidate student."""

    name: str
    description: str
    student: str  # what to pass to `distill train --student`
    architecture: str = "unknown"
    params: int | None = None
    size_gb: float | None = None
    downloads: int | None = None
    license: str = "unknown"
    languages: tuple[str, ...] = ()
    available: str = "hub"  # "offline" (shipped preset), "local" (a folder here) or "hub"
    extra: dict[str, Any] = field(default_factory=dict)

    def document(self) -> str:
        """The text BM25 and the embedding see for this model."""
        langs = ", ".join(LANGUAGE_NAMES.get(code, code) for code in self.languages) or "unknown"
        return f"{self.name}. {self.description} Architecture: {self.architecture}. Languages: {langs}."


def shipped_catalog_path() -> Path:
    return Path(str(resources.files("distill.retrieval") / "catalogs" / "models.json"))


def load_model_catalog(path: Path) -> list[ModelEntry]:
    """Read a JSON list of model entries; ValueError names the file and entry of any problem."""
    rows = read_json(path, list, what="model catalog")
    if not rows:
        raise ValueError(f"{path}: expected a non-empty JSON list of models")
    return [_model_entry(row, f"{path}: entry {i}") for i, row in enumerate(rows, start=1)]


def _model_entry(row: Any, where: str) -> ModelEntry:
    if not isinstance(row, dict):
        raise ValueError(f"{where} must be an object")
    for key in ("name", "description"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise ValueError(f"{where}: '{key}' must be a non-empty string")
    params = row.get("params")
    size = row.get("size_gb")
    if size is None and params:
        size = params * 4 / 1e9  # fp32 weights
    return ModelEntry(
        name=row["name"],
        description=row["description"],
        student=str(row.get("student") or row["name"]),
        architecture=str(row.get("architecture") or "unknown"),
        params=params,
        size_gb=float(size) if size is not None else None,
        downloads=row.get("downloads"),
        license=str(row.get("license") or "unknown"),
        languages=tuple(row.get("languages") or ()),
        available="offline" if row.get("offline") else "hub",
    )


def local_model_entry(model_dir: Path) -> ModelEntry:
    """A candidate from a local model folder: architecture from config.json, size from its
    weight files, description from its model card (README.md) and distill.json when present."""
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{model_dir}: no config.json (not a transformers model folder)")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    model_type = str(config.get("model_type", "unknown"))
    if not config.get("is_encoder_decoder") and model_type not in SEQ2SEQ_TYPES:
        raise ValueError(
            f"{model_dir}: model_type '{model_type}' is not an encoder-decoder (seq2seq) model"
        )
    size_bytes = sum(p.stat().st_size for p in model_dir.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    archs = ", ".join(config.get("architectures") or [model_type])
    return ModelEntry(
        name=model_dir.name,
        description=_local_description(model_dir, archs),
        student=str(model_dir.resolve()),
        architecture=model_type,
        params=size_bytes // 4 if size_bytes else None,  # fp32 estimate
        size_gb=size_bytes / 1e9 if size_bytes else None,
        available="local",
    )


def _local_description(model_dir: Path, archs: str) -> str:
    parts = [f"Local {archs} sequence-to-sequence model."]
    meta = model_dir / "distill.json"
    if meta.is_file():
        info = json.loads(meta.read_text(encoding="utf-8"))
        parts.append(
            f"Fine-tuned by distill for the task '{info.get('task_name', '')}': {info.get('instruction', '')}"
        )
    card = model_dir / "README.md"
    if card.is_file():
        text = re.sub(r"\A---\n.*?\n---\n", "", card.read_text(encoding="utf-8"), flags=re.DOTALL)
        parts.append(re.sub(r"\s+", " ", text).strip()[:800])
    return " ".join(p for p in parts if p)


def rank_models(
    query: str | list[str],
    entries: list[ModelEntry],
    *,
    embedder: Embedder | None,
    max_size_gb: float | None = 3.0,
    popularity_weight: float = 0.1,
    bm25_weight: float = 0.3,
    top_k: int = 5,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(top_k ranked candidates, excluded ones with the reason)."""
    kept, excluded = [], []
    for e in entries:
        if max_size_gb is not None and e.size_gb is not None and e.size_gb > max_size_gb:
            excluded.append(
                {"name": e.name, "reason": f"{e.size_gb:.2f} GB > --max-size-gb {max_size_gb:g}"}
            )
        else:
            kept.append(e)
    scored = hybrid_rank(
        query, [e.document() for e in kept], embedder=embedder, bm25_weight=bm25_weight
    )
    top_dl = max((e.downloads or 0 for e in kept), default=0)
    rows = [
        _row(kept[s.index], s.score, s.bm25, s.cosine, _prior(kept[s.index], top_dl))
        for s in scored
    ]
    for row in rows:
        row["score"] = round(row["fit"] + popularity_weight * row["popularity"], 4)
    rows.sort(key=lambda r: -r["score"])  # stable: equal scores keep the fused order
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows[:top_k], excluded


def _prior(e: ModelEntry, top_downloads: int) -> float:
    """log10(1 + downloads) scaled so the most downloaded candidate gets 1."""
    if not e.downloads or top_downloads <= 0:
        return 0.0
    return math.log10(1 + e.downloads) / math.log10(1 + top_downloads)


def _row(
    e: ModelEntry, fit: float, bm25: float, cosine: float, popularity: float
) -> dict[str, Any]:
    return {
        "rank": 0, "name": e.name, "student": e.student, "score": 0.0, "fit": round(fit, 4),
        "bm25": round(bm25, 4), "cosine": round(cosine, 4), "popularity": round(popularity, 4),
        "size_gb": round(e.size_gb, 3) if e.size_gb is not None else None, "params": e.params,
        "downloads": e.downloads, "architecture": e.architecture, "languages": list(e.languages),
        "license": e.license, "available": e.available, "description": e.description,
    }  # fmt: skip


# --- HyDE -------------------------------------------------------------------------------------

HYDE_SYSTEM = (
    "You write short model cards. Given a task, describe in 2 to 3 sentences a pretrained "
    "sequence-to-sequence model from the Hugging Face Hub that would be the best starting point "
    "for fine-tuning on it: its family (T5, BART, mT5, Marian, ...), the languages it covers, "
    "what it was trained on and which tasks it is good at. Reply with the description only."
)


def hyde_messages(instruction: str, examples: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The HyDE request: the task and up to three examples."""
    shown = "\n".join(f"Input: {i}\nOutput: {o}" for i, o in examples[:3])
    task = f"Task: {instruction}" + (f"\n\nExamples:\n{shown}" if shown else "")
    return [{"role": "system", "content": HYDE_SYSTEM}, {"role": "user", "content": task}]


# --- the hub (online) -------------------------------------------------------------------------


def hub_model_entries(*, limit: int = 500, endpoint: str | None = None) -> list[ModelEntry]:
    """The most downloaded text2text-generation models on the hub, with parameter counts."""
    from huggingface_hub import HfApi

    expand = ["downloads", "safetensors", "cardData", "tags", "config"]
    infos = call_hub(
        "list hub models",
        lambda: list(
            HfApi(endpoint=endpoint).list_models(
                pipeline_tag="text2text-generation", sort="downloads", limit=limit, expand=expand
            )
        ),
    )
    return [hub_model_entry(info) for info in infos]


def hub_model_entry(info: Any) -> ModelEntry:
    """A candidate from a `huggingface_hub` ModelInfo (fields may be missing)."""
    card = info.card_data.to_dict() if info.card_data is not None else {}
    params = info.safetensors.total if info.safetensors is not None else None
    langs = card.get("language") or []
    langs = [langs] if isinstance(langs, str) else list(langs)
    datasets = card.get("datasets") or []
    tags = [t for t in (info.tags or []) if ":" not in t][:12]
    model_type = (info.config or {}).get("model_type", "unknown")
    desc = f"{info.id}: {model_type} text-to-text model. Tags: {', '.join(tags)}."
    if datasets:
        desc += f" Trained on: {', '.join(map(str, datasets))[:300]}."
    return ModelEntry(
        name=info.id, description=desc, student=info.id, architecture=model_type, params=params,
        size_gb=params * 4 / 1e9 if params else None, downloads=info.downloads,
        license=str(card.get("license") or "unknown"), languages=tuple(map(str, langs)),
    )  # fmt: skip


def hub_model_catalog(
    cache_path: Path, *, limit: int = 500, refresh: bool = False, endpoint: str | None = None
) -> list[ModelEntry]:
    """`hub_model_entries`, cached at `cache_path` as a model catalog for a week."""
    fresh = cache_path.is_file() and time.time() - cache_path.stat().st_mtime < HUB_CACHE_MAX_AGE_S
    if not fresh or refresh:
        rows = [_catalog_row(e) for e in hub_model_entries(limit=limit, endpoint=endpoint)]
        atomic_write_json(cache_path, rows)
    return load_model_catalog(cache_path)


def _catalog_row(e: ModelEntry) -> dict[str, Any]:
    return {
        "name": e.name, "student": e.student, "architecture": e.architecture, "params": e.params,
        "size_gb": e.size_gb, "downloads": e.downloads, "license": e.license,
        "languages": list(e.languages), "description": e.description, "offline": False,
    }  # fmt: skip
