"""What the page at `/` shows about the served model: the body of GET /v1/info (stdlib only).

Read once at startup from files, never through `distill` code (exports never imports distill):
- `distill.json` beside the graphs: the task's name and instruction, the student, its size;
- `export_report.json`: the export's quality gate (did int8 pass, and if not why);
- when the ONNX dir is a run's `RUN/onnx`, two files `distill run` writes beside it: the task's
  demonstrations from `RUN/data/state.json` (the generate stage's fingerprinted settings) and
  the student-vs-teacher scores from `RUN/report.json` (its evaluation stage).
A missing optional file leaves its part empty and adds a line to `notes` saying what is missing,
so the page can say why instead of showing nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from common.files import files_size
from common.meta import StudentMeta
from exports.config import ServeConfig
from exports.layout import GRAPHS, REPORT_FILE, graph_file

RUN_STATE = Path("data") / "state.json"  # relative to RUN: the generate stage's settings
RUN_REPORT = "report.json"  # RUN/report.json: `distill run`'s student-vs-teacher reports
GATE_KEYS = ("status", "int8_ok", "n", "n_labelled", "reason", "int8_agrees_with_fp32")


class Demonstration(TypedDict):
    input: str
    output: str


class ModelFacts(TypedDict):
    student: str  # the student's preset or hub id, else its model type
    num_parameters: int | None
    precision: str  # the graphs this service loaded: int8 or fp32
    size_bytes: int  # bytes of those three graphs
    max_new_tokens: int  # the default decoding limit (distill.json)


class Score(TypedDict):
    """One row of RUN/report.json: one target scored on the run's test set."""

    name: str
    kind: str  # onnx | model | teacher | predictions
    n: int
    metrics: dict[str, float]  # as written: built-in metrics are 0-1 fractions
    p50_ms: float | None
    size_mb: float | None


class Scores(TypedDict):
    test: str  # the name of the test file the targets were scored on
    reports: list[Score]


class Limits(TypedDict):
    max_inputs: int
    max_input_chars: int
    max_body_bytes: int
    max_new_tokens: int
    max_beams: int


class ServiceInfo(TypedDict):
    """GET /v1/info."""

    task: dict[str, str]  # name, instruction
    demonstrations: list[Demonstration]
    model: ModelFacts
    gate: dict[str, Any] | None  # GATE_KEYS of export_report.json's gate, None without a report
    scores: Scores | None
    limits: Limits
    notes: list[str]  # what is not shown, and why


def service_info(
    onnx_dir: Path, meta: StudentMeta, precision: str, settings: ServeConfig
) -> ServiceInfo:
    """Everything the page shows, from the files of `onnx_dir` and of the run around it."""
    notes: list[str] = []
    run = onnx_dir.resolve().parent
    model: ModelFacts = {
        "student": meta.student or meta.model_type or "unknown",
        "num_parameters": meta.num_parameters,
        "precision": precision,
        "size_bytes": files_size(onnx_dir / graph_file(g, precision) for g in GRAPHS),
        "max_new_tokens": meta.max_new_tokens,
    }
    limits: Limits = {
        "max_inputs": settings.max_inputs,
        "max_input_chars": settings.max_input_chars,
        "max_body_bytes": settings.max_body_bytes,
        "max_new_tokens": settings.max_new_tokens,
        "max_beams": settings.max_beams,
    }
    return {
        "task": {"name": meta.task_name, "instruction": meta.instruction},
        "demonstrations": _demonstrations(run / RUN_STATE, meta.task_name, notes),
        "model": model,
        "gate": _gate(onnx_dir / REPORT_FILE, notes),
        "scores": _scores(run / RUN_REPORT, notes),
        "limits": limits,
        "notes": notes,
    }


def _read(path: Path, label: str, notes: list[str], missing: str) -> dict[str, Any] | None:
    """A JSON object, or None with a note (`missing` says what its absence means). Notes name
    files relative to the ONNX dir (`label`): the page must not reveal the server's paths."""
    if not path.is_file():
        notes.append(f"{label}: not found ({missing})")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        notes.append(f"{label}: unreadable ({type(exc).__name__})")
        return None
    if not isinstance(data, dict):
        notes.append(f"{label}: not a JSON object")
        return None
    return data


def _demonstrations(path: Path, task_name: str, notes: list[str]) -> list[Demonstration]:
    """The task's demonstrations as the run's generate stage recorded them."""
    state = _read(
        path,
        f"../{RUN_STATE}",
        notes,
        "no demonstrations: the model is not in a `distill run` folder",
    )
    settings = (state or {}).get("settings")
    if not isinstance(settings, dict):
        return []
    recorded = (settings.get("task") or {}).get("name")
    if task_name and recorded and recorded != task_name:
        notes.append(
            f"../{RUN_STATE}: task {recorded!r} is not the model's {task_name!r}; not shown"
        )
        return []
    pairs = settings.get("demonstrations") or []
    return [
        {"input": p[0], "output": p[1]}
        for p in pairs
        if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
    ]


def _gate(path: Path, notes: list[str]) -> dict[str, Any] | None:
    report = _read(path, REPORT_FILE, notes, "the export's quality gate is unknown")
    gate = (report or {}).get("gate")
    if not isinstance(gate, dict):
        return None
    return {k: gate[k] for k in GATE_KEYS if k in gate}


def _scores(path: Path, notes: list[str]) -> Scores | None:
    saved = _read(
        path, f"../{RUN_REPORT}", notes, "no student-vs-teacher scores: `distill run` writes them"
    )
    reports = (saved or {}).get("reports")
    if not isinstance(reports, list):
        return None
    rows: list[Score] = []
    for rep in reports:
        if not isinstance(rep, dict) or not isinstance(rep.get("metrics"), dict):
            continue
        latency = rep.get("latency_ms") or {}
        rows.append(
            {
                "name": str(rep.get("name") or rep.get("target") or "?"),
                "kind": str(rep.get("kind") or ""),
                "n": int(rep.get("n") or 0),
                "metrics": {
                    k: v["score"]
                    for k, v in rep["metrics"].items()
                    if isinstance(v, dict) and isinstance(v.get("score"), int | float)
                },
                "p50_ms": latency.get("p50") if isinstance(latency, dict) else None,
                "size_mb": rep.get("size_mb"),
            }
        )
    return {"test": Path(str((saved or {}).get("test") or "")).name, "reports": rows}
