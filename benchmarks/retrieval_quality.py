"""Retrieval quality of the dataset and model retrievers: BM25 vs MiniLM vs their fusions.

Paraphrased task instructions (worded unlike the catalog descriptions on purpose) are ranked
against the shipped catalogs; each query lists the entries that count as a correct answer. For
every method we report top-1 accuracy, recall@3 and MRR (mean reciprocal rank of the first
correct entry), and the ratio of the default (weighted fusion, w=0.3) to each single signal.
One encoding pass serves all methods: BM25 and cosine scores are computed once per query.
Caveat: queries, labels and catalog descriptions were written by the same person; the
absolute numbers flatter the method, the comparison between methods is the point.

    python benchmarks/retrieval_quality.py            # all queries
    python benchmarks/retrieval_quality.py --quick    # every third query
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distill.retrieval import datasets as ds
from distill.retrieval import models as ms
from distill.retrieval.ranking import MiniLMEmbedder, hybrid_rank

RESULTS = Path(__file__).parent / "results"

DATA_QUERIES: list[tuple[str, set[str]]] = [
    ("Decide whether a film critique is favourable or unfavourable", {"imdb", "sst2"}),
    ("Tell me if this restaurant review is good or bad", {"yelp_polarity"}),
    (
        "Which newspaper section does this headline belong to: world, sports, business or science?",
        {"ag_news"},
    ),
    ("Detect whether a tweet is hateful", {"tweet_eval_hate"}),
    ("What feeling does this short message express: joy, anger, sadness?", {"emotion"}),
    ("Condense a long news story into its key bullet points", {"cnn_dailymail", "xsum"}),
    ("Write a one-line gist of a BBC article", {"xsum"}),
    ("Summarise a chat conversation between friends", {"samsum"}),
    ("Render German sentences in English", {"wmt16_de_en"}),
    ("Translate passages of novels from English into French", {"opus_books_en_fr"}),
    ("Find the span of the paragraph that answers the question", {"squad"}),
    ("Answer yes or no to a question about a Wikipedia paragraph", {"boolq"}),
    ("Compute the answer to an arithmetic story problem for children", {"gsm8k"}),
    ("Tag people, companies and places mentioned in a sentence", {"conll2003"}),
    ("Does the second sentence follow from the first one?", {"multi_nli"}),
    ("Are these two sentences paraphrases of each other?", {"paws"}),
    ("Turn a question about a table into a SQL query", {"wikisql", "spider"}),
    ("Generate a Python function from a docstring", {"mbpp"}),
    ("Fix grammatical errors in a learner's sentence", {"jfleg"}),
    ("Write a sentence that uses all of these words: dog, frisbee, catch", {"common_gen"}),
    ("Describe a restaurant from attributes like food type and price", {"e2e_nlg"}),
    ("What kind of answer does this question expect: a person, a place, a number?", {"trec"}),
]
MODEL_QUERIES: list[tuple[str, set[str]]] = [
    ("Condense news stories into short summaries", {"facebook/bart-large-cnn", "sshleifer/distilbart-cnn-12-6", "google/pegasus-xsum"}),
    ("Render French text from English input", {"Helsinki-NLP/opus-mt-en-fr"}),
    ("Turn German sentences into English ones", {"Helsinki-NLP/opus-mt-de-en"}),
    ("Generate a program from a natural language description", {"Salesforce/codet5-small"}),
    ("Correct grammar errors in sentences", {"vennify/t5-base-grammar-correction"}),
    ("Follow instructions zero-shot and answer questions", {"google/flan-t5-small", "google/flan-t5-base"}),
    ("Generate text in Hindi and Arabic", {"google/mt5-small", "google/mt5-base", "facebook/mbart-large-50"}),
    ("Normalise noisy misspelled words character by character", {"google/byt5-small"}),
    ("Translate between dozens of languages", {"facebook/mbart-large-50", "google/mt5-small", "google/mt5-base"}),
    ("Short English classification with lower-case labels that must run offline", {"embedded"}),
]  # fmt: skip

Fusion = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _weighted(w: float) -> Fusion:
    return lambda bm25, cos: w * bm25 + (1 - w) * np.clip(cos, 0, None)


def _rrf(bm25: np.ndarray, cos: np.ndarray, k: int = 60) -> np.ndarray:
    """Reciprocal rank fusion, sum of 1 / (k + rank) over the two rankings, divided by its
    maximum 2 / (k + 1) so that the popularity prior is added on the same [0, 1] scale."""
    out = np.zeros_like(bm25)
    for scores in (bm25, cos):
        ranks = np.empty(len(scores))
        ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
        out += 1.0 / (k + ranks)
    return out / (2.0 / (k + 1))


METHODS: dict[str, Fusion] = {
    "bm25 only": _weighted(1.0),
    "MiniLM only": _weighted(0.0),
    "weighted w=0.3 (default)": _weighted(0.3),
    "weighted w=0.5": _weighted(0.5),
    "RRF k=60": _rrf,
}


def evaluate(
    queries: list[tuple[str, set[str]]], docs: list[str], names: list[str], prior: np.ndarray
) -> dict:
    """Metrics of every method over `queries`; `prior` is added to each fused score (models)."""
    emb = MiniLMEmbedder()
    per_method: dict[str, list[int]] = {m: [] for m in METHODS}
    t0 = time.perf_counter()
    for query, relevant in queries:
        scored = sorted(hybrid_rank(query, docs, embedder=emb), key=lambda s: s.index)
        bm25 = np.array([s.bm25 for s in scored])
        cos = np.array([s.cosine for s in scored])
        for method, fuse in METHODS.items():
            final = fuse(bm25, cos) + prior
            order = sorted(range(len(docs)), key=lambda i: (-final[i], i))
            per_method[method].append(
                next(r for r, i in enumerate(order, 1) if names[i] in relevant)
            )
    ms_per_query = 1000 * (time.perf_counter() - t0) / len(queries)
    return {m: _metrics(ranks) for m, ranks in per_method.items()} | {"_ms_per_query": ms_per_query}


def _metrics(ranks: list[int]) -> dict[str, float]:
    return {
        "top1": sum(r == 1 for r in ranks) / len(ranks),
        "recall@3": sum(r <= 3 for r in ranks) / len(ranks),
        "mrr": sum(1 / r for r in ranks) / len(ranks),
    }


def _model_prior(entries: list[ms.ModelEntry], weight: float = 0.1) -> np.ndarray:
    top = max(e.downloads or 0 for e in entries)
    return np.array(
        [weight * math.log10(1 + (e.downloads or 0)) / math.log10(1 + top) for e in entries]
    )


def markdown(results: dict) -> str:
    lines = []
    for name, res in results.items():
        if name.startswith("_"):
            continue
        base = res["weighted w=0.3 (default)"]["mrr"]
        lines += [
            f"### {name} ({res['_queries']} queries, {res['_docs']} catalog entries)",
            "",
            "| method | top-1 | recall@3 | MRR | default MRR / this MRR |",
            "| --- | --- | --- | --- | --- |",
        ]
        for method in METHODS:
            m = res[method]
            lines.append(
                f"| {method} | {m['top1']:.2f} | {m['recall@3']:.2f} | {m['mrr']:.3f} | {base / m['mrr']:.2f}x |"
            )
        lines += [
            "",
            f"Ranking time: {res['_ms_per_query']:.0f} ms per query (all methods share one pass).",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="every third query")
    args = parser.parse_args()
    step = 3 if args.quick else 1
    dcat = ds.load_catalog(ds.shipped_catalog_path())
    mcat = ms.load_model_catalog(ms.shipped_catalog_path())
    results = {}
    for name, queries, docs, names, prior in (
        ("datasets", DATA_QUERIES[::step], [e.document() for e in dcat], [e.name for e in dcat], np.zeros(len(dcat))),
        ("models (+ popularity prior 0.1)", MODEL_QUERIES[::step], [e.document() for e in mcat], [e.name for e in mcat], _model_prior(mcat)),
    ):  # fmt: skip
        MiniLMEmbedder().encode(docs)  # warm the model and the document vectors before timing
        res = evaluate(queries, docs, names, prior)
        results[name] = res | {"_queries": len(queries), "_docs": len(docs)}
    tag = "retrieval_quality_quick" if args.quick else "retrieval_quality"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{tag}.json").write_text(json.dumps(results, indent=2) + "\n")
    md = markdown(results)
    (RESULTS / f"{tag}.md").write_text(md + "\n")
    print(md)


if __name__ == "__main__":
    main()
