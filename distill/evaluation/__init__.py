"""Metrics and `distill eval`: score an ONNX dir, a model dir or a teacher on a test set.

    from distill.evaluation import evaluate_target, compare_markdown
    report = evaluate_target("runs/x/onnx", Path("test.jsonl"), task=spec, cfg=EvalConfig())
    print(compare_markdown([report]))

Import-light: the heavy parts (numpy, sacrebleu, torch, onnxruntime) load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compare_markdown", "evaluate_target", "write_report"]


def __getattr__(name: str) -> Any:
    # Lazy re-exports so that `import distill.evaluation.config` never pulls numpy in.
    if name == "evaluate_target":
        from distill.evaluation.engine import evaluate_target

        return evaluate_target
    if name in ("compare_markdown", "write_report"):
        from distill.evaluation import reports

        return getattr(reports, name)
    raise AttributeError(name)
