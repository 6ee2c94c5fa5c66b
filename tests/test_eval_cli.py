"""`distill eval` end to end: report schema, compare table, a teacher over loopback HTTP, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distill.cli import main
from distill.evaluation import compare_markdown
from distill.evaluation.config import TEACHER_MAX_NEW_TOKENS, EvalConfig
from distill.evaluation.engine import evaluate_target
from distill.evaluation.reports import worst_examples
from distill.task import load_task

TEST_ROWS = [
    {"input": "20.08.2010", "output": "08/20/2010"},
    {"input": "March 3rd, 1999", "output": "03/03/1999"},
    {"input": "2021-12-25", "output": "12/25/2021"},
    {"input": "the 7th of July 2015", "output": "07/07/2015"},
]
TASK_TOML = """
name = "dates"
instruction = "Rewrite the date in the format MM/DD/YYYY."
[[demonstrations]]
input = "1.2.2003"
output = "02/01/2003"
[[demonstrations]]
input = "May 5, 1990"
output = "05/05/1990"
"""
ANSWERS = {r["input"]: r["output"] for r in TEST_ROWS}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    task = tmp_path / "task.toml"
    task.write_text(TASK_TOML, encoding="utf-8")
    preds = [{"prediction": r["output"]} for r in TEST_ROWS]
    preds[3] = {"prediction": "7/7/2015"}  # one wrong answer
    return {
        "data": _write_jsonl(tmp_path / "test.jsonl", TEST_ROWS),
        "task": task,
        "preds": _write_jsonl(tmp_path / "preds.jsonl", preds),
    }


def test_report_schema_and_files(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    out = tmp_path / "rep" / "a.json"
    code = main(
        ["eval", "--model", str(files["preds"]), "--data", str(files["data"]), "--out", str(out),
         "--metrics", "em,chrf,em_nospace", "--bootstrap-samples", "200", "--show-errors", "1"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(out.read_text())
    assert report["n"] == 4 and report["kind"] == "predictions"
    assert set(report["metrics"]) == {"em", "chrf", "em_nospace"}
    assert report["metrics"]["em"]["score"] == pytest.approx(0.75)
    low, high = report["metrics"]["em"]["ci95"]
    assert 0.0 <= low <= 0.75 <= high <= 1.0
    for key in ("latency_ms", "throughput_per_s", "tokens_per_1k_inputs", "size_mb", "settings"):
        assert key in report
    rows = [json.loads(x) for x in Path(report["predictions_file"]).read_text().splitlines()]
    assert [r["prediction"] for r in rows][3] == "7/7/2015"
    assert rows[3]["scores"]["em"] == 0.0 and rows[0]["scores"]["em"] == 1.0
    printed = capsys.readouterr().out
    assert "| predictions.jsonl | 4 | 75.0 [" in printed.replace("preds.jsonl", "predictions.jsonl")
    assert "worst 1 of 4" in printed and "7/7/2015" in printed


def test_compare_markdown_rows_and_union_of_metrics() -> None:
    a = {"target": "a", "name": "teacher x", "n": 10, "metrics": {"em": {"score": 0.5, "ci95": [0.2, 0.8]}},
         "latency_ms": {"p50": 100.0, "p95": 250.0}, "throughput_per_s": 3.0,
         "tokens_per_1k_inputs": {"prompt": 1000.0, "completion": 500.0}, "cost_usd_per_1k_inputs": 0.0,
         "size_mb": None}  # fmt: skip
    b = {"target": "b", "n": 10, "metrics": {"chrf": {"score": 0.7125, "ci95": None}},
         "latency_ms": None, "throughput_per_s": None, "size_mb": 52.04}  # fmt: skip
    table = compare_markdown([a, b]).splitlines()
    assert table[0].startswith("| target | n | em (95% CI) | chrf (95% CI) | p50 ms")
    assert (
        table[2]
        == "| teacher x | 10 | 50.0 [20.0, 80.0] | - | 100.0 | 250.0 | 3.00 | 1,500 | 0.0000 | - |"
    )
    assert table[3] == "| b | 10 | - | 71.2 | - | - | - | - | - | 52.0 |"


def test_teacher_over_loopback_server(files: dict[str, Path]) -> None:
    from teachers.config import TeacherConfig
    from teachers.testing import FakeOpenAIServer

    def responder(body: dict, index: int) -> str:
        question = body["messages"][-1]["content"]
        answer = ANSWERS[question]
        # the LLM chatters after the answer on one input: only the first line counts
        return answer + "\nThis is the date." if question == "2021-12-25" else answer

    with FakeOpenAIServer(responder=responder, model="fake-model") as server:
        cfg = TeacherConfig(teacher=server.base_url, model="fake-model", api_key_env="NO_KEY_HERE")
        report = evaluate_target(
            f"teacher:{server.base_url}", files["data"], task=load_task(files["task"]),
            cfg=EvalConfig(metrics=["em"], bootstrap_samples=50), teacher_cfg=cfg,
        )  # fmt: skip
        bodies = list(server.requests)
    assert report["metrics"]["em"]["score"] == 1.0
    assert report["kind"] == "teacher" and report["n"] == 4 and report["failures"] == 0
    assert report["latency_ms"]["samples"] == 4
    assert report["tokens_per_1k_inputs"]["completion"] > 0
    # few-shot prompt: system instruction, 2 demonstrations as turns, the input; greedy
    msgs = bodies[0]["messages"]
    assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("Rewrite the date")
    assert [m["role"] for m in msgs[1:]] == ["user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"] == "02/01/2003"
    assert all(b["temperature"] == 0.0 for b in bodies)
    # max_new_tokens unset: a teacher answers in at most TEACHER_MAX_NEW_TOKENS
    assert all(b["max_tokens"] == TEACHER_MAX_NEW_TOKENS == 64 for b in bodies)
    assert sorted(b["messages"][-1]["content"] for b in bodies) == sorted(ANSWERS)


def test_worst_examples_orders_by_first_metric() -> None:
    report = {"metrics": {"em": {}, "chrf": {}}, "examples": [
        {"index": 0, "scores": {"em": 0.0, "chrf": 0.8}},
        {"index": 1, "scores": {"em": 1.0, "chrf": 1.0}},
        {"index": 2, "scores": {"em": 0.0, "chrf": 0.1}},
    ]}  # fmt: skip
    assert [e["index"] for e in worst_examples(report, 2)] == [2, 0]


def _run_err(argv: list[str], capsys) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


def test_bad_inputs_exit_2_with_reason(files: dict[str, Path], tmp_path: Path, capsys) -> None:
    data, preds = str(files["data"]), str(files["preds"])
    missing = _write_jsonl(tmp_path / "missing.jsonl", [{"input": "x"}])
    err = _run_err(["eval", "--model", preds, "--data", str(missing)], capsys)
    assert "missing.jsonl:1: field 'output'" in err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "no examples" in _run_err(["eval", "--model", preds, "--data", str(empty)], capsys)
    short = _write_jsonl(tmp_path / "short.jsonl", [{"prediction": "x"}])
    err = _run_err(
        ["eval", "--compare", preds, str(short), "--data", data, "--out", f"{tmp_path}/"], capsys
    )
    assert "1 predictions for 4 test examples" in err
    err = _run_err(["eval", "--model", str(tmp_path / "nope"), "--data", data], capsys)
    assert "no such file or directory" in err
    err = _run_err(["eval", "--model", "teacher:embedded", "--data", data], capsys)
    assert "pass --task" in err
    err = _run_err(["eval", "--model", preds, "--data", data, "--metrics", "em,bleu4xyz"], capsys)
    assert "bleu4xyz" in err
    assert "--model or --compare" in _run_err(["eval", "--data", data], capsys)
    err = _run_err(["eval", "--model", preds, "--data", data, "--max-new-tokens", "0"], capsys)
    assert "--max-new-tokens" in err


def test_model_target_report(files: dict[str, Path], tmp_path: Path) -> None:
    """A tiny real student scored as a model dir: timings, size of its weights, files."""
    from tiny_models import make_t5_dir

    from distill.evaluation import write_report

    model = make_t5_dir(tmp_path / "model")
    cfg = EvalConfig(max_new_tokens=6, latency_samples=2, bootstrap_samples=20, student_threads=1)
    rep = evaluate_target(str(model), files["data"], task=None, cfg=cfg)
    assert rep["kind"] == "model" and rep["n"] == 4
    assert rep["latency_ms"]["samples"] == 2 and rep["latency_ms"]["mode"] == "batch 1"
    assert rep["throughput_per_s"] > 0 and rep["tokens_per_1k_inputs"] is None
    assert rep["size_bytes"] == (model / "model.safetensors").stat().st_size
    written = write_report(rep, tmp_path / "r.json")
    assert "examples" not in json.loads((tmp_path / "r.json").read_text())
    assert Path(written["predictions_file"]).read_text().count("\n") == 4


def test_student_decodes_to_its_own_limit_unless_told(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """Unset max_new_tokens: a student decodes to its distill.json's limit (what train validated,
    the gate checked and `distill serve` returns), not a fixed 64; a set one replaces it."""
    from tiny_models import make_t5_dir

    from students.predict import TorchPredictor

    model = make_t5_dir(tmp_path / "model")
    meta = json.loads((model / "distill.json").read_text())
    (model / "distill.json").write_text(json.dumps({**meta, "max_new_tokens": 3}))
    inputs = [r["input"] for r in TEST_ROWS]
    predictor = TorchPredictor(model)
    short, long = (predictor.generate(inputs, max_new_tokens=n) for n in (3, 12))
    assert short != long  # the random student runs past 3 tokens, so the limit shows

    def predictions(**limit: int) -> list[str]:
        cfg = EvalConfig(latency_samples=1, bootstrap_samples=0, student_threads=1, **limit)
        rep = evaluate_target(str(model), files["data"], task=None, cfg=cfg)
        return [e["prediction"] for e in rep["examples"]]

    assert EvalConfig().max_new_tokens is None
    assert predictions() == short
    assert predictions(max_new_tokens=12) == long


@pytest.mark.slow
def test_onnx_target_matches_model_target(files: dict[str, Path], tmp_path: Path) -> None:
    """The same tiny student exported to ONNX gives the same predictions through eval."""
    from tiny_models import make_t5_dir

    from exports.config import ExportConfig
    from exports.pipeline import export_model

    model = make_t5_dir(tmp_path / "model")
    onnx = tmp_path / "onnx"
    export_model(model, onnx, ExportConfig(quantize="none"))
    cfg = EvalConfig(max_new_tokens=6, latency_samples=2, bootstrap_samples=20, student_threads=1)
    torch_rep = evaluate_target(str(model), files["data"], task=None, cfg=cfg)
    onnx_rep = evaluate_target(str(onnx), files["data"], task=None, cfg=cfg)
    assert onnx_rep["kind"] == "onnx" and onnx_rep["extra"]["precision"] == "fp32"
    assert [e["prediction"] for e in onnx_rep["examples"]] == [
        e["prediction"] for e in torch_rep["examples"]
    ]
    assert onnx_rep["size_bytes"] == sum(
        (onnx / f).stat().st_size
        for f in ("encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx")
    )
