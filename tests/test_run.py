"""`distill run` end to end on real parts: loopback teacher, tiny student, real ONNX export.

The teacher is the loopback OpenAI server answering with a deterministic word-reversal task; the
student is a tiny encoder-decoder built from a config. Checks the whole chain writes every
artefact, that a rerun skips the finished stages and asks the teacher for no new data, and
that a registered extra dataset joins training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import xxhash
from tiny_models import tiny_encoder_decoder_dir

from distill.cli import main
from teachers.testing import FakeOpenAIServer

WORDS = ["amber", "basil", "cedar", "dune", "ember", "fjord", "grove", "heath", "inlet", "kelp"]

TASK = """
name = "reverse"
instruction = "Reverse the order of the words."
[[demonstrations]]
input = "red green blue"
output = "blue green red"
[[demonstrations]]
input = "one two"
output = "two one"
"""


def phrase(n: int) -> str:
    return " ".join(WORDS[xxhash.xxh3_64_intdigest(f"{n}:{k}".encode()) % 10] for k in range(4))


def is_synthesize(body: dict) -> bool:
    return any("JSON" in m["content"] for m in body["messages"])


def responder(body: dict, index: int) -> str:
    """Synthesize requests get two fresh pairs; anything else (the eval prompt) a fixed answer."""
    seed = int(body.get("seed") or 0)
    if not is_synthesize(body):
        return "blue green red"
    pairs = [phrase(2 * seed + j) + f" {2 * seed + j}" for j in range(2)]
    return json.dumps([{"input": p, "output": " ".join(reversed(p.split()))} for p in pairs])


def run_args(task: Path, out: Path, student: Path, url: str) -> list[str]:
    return [
        "run", "--task", str(task), "--out", str(out), "--num-examples", "12",
        "--teacher", url, "--model", "fake", "--student", str(student), "--epochs", "1",
        "--max-new-tokens", "8",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_encoder_decoder_dir(tmp_path_factory.mktemp("student") / "tiny")


def test_run_end_to_end_then_resume_skips(
    tmp_path: Path, tiny_student: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    out = tmp_path / "run"
    with FakeOpenAIServer(responder) as server:
        assert main(run_args(task, out, tiny_student, server.base_url)) == 0
        first = capsys.readouterr().out
        sent = server.count()
        for name in ("data/examples.jsonl", "data/manifest.json", "model/distill.json",
                     "onnx/encoder_model.onnx", "onnx/decoder_with_past_model.onnx",
                     "report.json", "report.md", "report.html", "run_state.json"):  # fmt: skip
            assert (out / name).is_file(), name
        report = json.loads((out / "report.json").read_text())
        targets = [r["target"] for r in report["reports"]]
        assert len(targets) == 3 and targets[-1].startswith("teacher:")
        _check_scores(out, report)
        _check_page(out, report)
        assert f"wrote {out / 'report.html'}" in first
        assert "| target" in first and "self-agreement" in first
        # The table is scored on the generated test split: disjoint from what trained the
        # student, picked its best epoch and gated int8; a tiny split says its CIs mean nothing.
        assert report["test"] == str(out / "data" / "test.jsonl")
        test_inputs = {json.loads(x)["input"] for x in (out / "data/test.jsonl").open()}
        seen = {
            json.loads(x)["input"]
            for name in ("train.jsonl", "validation.jsonl")
            for x in (out / "data" / name).open()
        }
        assert test_inputs and not test_inputs & seen
        assert all(r["n"] == len(test_inputs) for r in report["reports"])
        assert f"only {len(test_inputs)} test rows (< 50)" in first
        # Rerun: same data and settings, so train and export are skipped, generation asks the
        # teacher for nothing new, and the teacher's evaluation is reused, not paid again.
        assert main(run_args(task, out, tiny_student, server.base_url)) == 0
        second = capsys.readouterr().out
        assert "train: " in second and "is up to date" in second
        assert "export: " in second and second.count("is up to date") == 2
        assert second.count("reusing its scores") == 3
        assert server.requests[sent:] == []
        again = json.loads((out / "report.json").read_text())
        assert [r["metrics"] for r in again["reports"]] == [r["metrics"] for r in report["reports"]]
        assert "| target" in second


def _check_page(out: Path, report: dict) -> None:
    """RUN/report.html: the table's numbers, the charts inlined, the data's rejections, errors."""
    from distill.evaluation.reports import fmt_metric

    page = (out / "report.html").read_text(encoding="utf-8")
    for rep in report["reports"]:
        assert f'<td class="num">{fmt_metric("em", rep["metrics"]["em"])}</td>' in page
        assert f"of {rep['n']} for " in page  # its worst errors
    assert page.count('<img src="data:image/png;base64,') == 2  # comparison, training curve
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    for reason, n in manifest["counts"]["rejected_by_reason"].items():
        assert f'<td>{reason}</td><td class="num">{n}</td>' in page


def test_bad_student_same_one_line_in_train_and_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`distill run` refuses a bad --student like `distill train`, before asking the teacher."""
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.jsonl").write_text('{"input": "a b", "output": "b a"}\n')
    with FakeOpenAIServer(responder) as server:
        train_argv = ["train", "--data", str(data), "--out", str(tmp_path / "m"), "--task",
                      str(task), "--student", "flan-t5-smal"]  # fmt: skip
        assert main(train_argv) == 2
        train_err = capsys.readouterr().err
        run_argv = run_args(task, tmp_path / "run", Path("flan-t5-smal"), server.base_url)
        assert main(run_argv) == 2
        run_err = capsys.readouterr().err
        assert server.requests == []  # refused before any teacher work
    assert train_err.count("\n") == 1 and run_err.count("\n") == 1
    assert train_err.startswith("distill train: error: --student: 'flan-t5-smal'")
    assert run_err.removeprefix("distill run") == train_err.removeprefix("distill train")
    assert not (tmp_path / "run" / "data").exists()


def _check_scores(out: Path, report: dict) -> None:
    """The scores are those of the predictions, on the held-out test split, for every target."""
    from sacrebleu.metrics import CHRF

    assert report["test"] == str(out / "data" / "test.jsonl")
    refs = [json.loads(x)["output"] for x in (out / "data" / "test.jsonl").read_text().splitlines()]
    onnx, torch_model, teacher = report["reports"]
    for rep in (onnx, torch_model, teacher):
        assert rep["n"] == len(refs) > 0
        assert [e["reference"] for e in rep["examples"]] == refs
        preds = [e["prediction"] for e in rep["examples"]]
        em = sum(p == r for p, r in zip(preds, refs, strict=True)) / len(refs)
        assert rep["metrics"]["em"]["score"] == pytest.approx(em)
        chrf = CHRF(word_order=2).corpus_score(preds, [refs]).score  # chrF++, 0-100
        assert rep["metrics"]["chrf"]["score"] in (pytest.approx(chrf), pytest.approx(chrf / 100))
    # the teacher answers every eval prompt with "blue green red": never a reversed phrase
    assert {e["prediction"] for e in teacher["examples"]} == {"blue green red"}
    assert teacher["metrics"]["em"]["score"] == 0.0
    # fp32 ONNX is PyTorch greedy token for token; int8 is only served after passing the gate
    export = json.loads((out / "onnx" / "export_report.json").read_text())
    assert onnx["extra"]["precision"] == export["runtime_precision"]
    if export["runtime_precision"] == "fp32":
        assert [e["prediction"] for e in onnx["examples"]] == [
            e["prediction"] for e in torch_model["examples"]
        ]
        assert onnx["metrics"]["chrf"]["score"] == torch_model["metrics"]["chrf"]["score"]


def test_registered_extra_data_joins_training(tmp_path: Path) -> None:
    import argparse

    from distill.stages import stage_config
    from distill.stages.train import with_registered_extra_data

    (tmp_path / "extra_data.json").write_text(json.dumps({"extra_data": ["/x/a.jsonl:0.5"]}))
    cfg = stage_config("train", None, argparse.Namespace())
    assert with_registered_extra_data(cfg, tmp_path).extra_data == ["/x/a.jsonl:0.5"]
    mine = stage_config("train", None, argparse.Namespace(extra_data=["/y/b.jsonl"]))
    assert with_registered_extra_data(mine, tmp_path).extra_data == ["/y/b.jsonl"]


def test_stage_names_have_one_source() -> None:
    """task.toml tables, `distill run`'s typed configs and its flags all follow STAGES."""
    import dataclasses

    from distill.stages import STAGE_CONFIGS, STAGES
    from distill.stages.run import StageConfigs
    from distill.task import TABLE_KEYS

    assert TABLE_KEYS == STAGES == tuple(STAGE_CONFIGS)
    assert tuple(f.name for f in dataclasses.fields(StageConfigs)) == STAGES


def test_rationale_weight_without_chain_of_thought_is_refused_before_the_teacher(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`distill run --rationale-weight 0.5` without --chain-of-thought would generate data with
    no rationale and only then fail in train: refused first, one line, nothing sent or written."""
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    with FakeOpenAIServer(responder) as server:
        argv = run_args(task, tmp_path / "run", Path("embedded"), server.base_url)
        assert main([*argv, "--rationale-weight", "0.5"]) == 2
        assert server.requests == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--rationale-weight" in err and "--chain-of-thought" in err
    assert not (tmp_path / "run" / "data").exists()


def test_run_with_a_test_file_holds_no_generated_test_split_out(
    tmp_path: Path, tiny_student: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With `--test FILE` the table is scored on FILE, so every accepted example trains or
    validates: no generated test split takes paid examples away (it held out up to a quarter)."""
    task = tmp_path / "task.toml"
    task.write_text(TASK)
    test = tmp_path / "real_test.jsonl"
    test.write_text("".join(json.dumps({"input": p, "output": p[::-1]}) + "\n"
                            for p in ("x y z", "p q")))  # fmt: skip
    out = tmp_path / "run"
    with FakeOpenAIServer(responder) as server:
        assert main([*run_args(task, out, tiny_student, server.base_url), "--test", str(test)]) == 0
    log = capsys.readouterr().out
    assert f"--test {test}: no test split is held out" in log
    data = out / "data"
    accepted = {json.loads(x)["input"] for x in (data / "examples.jsonl").open()}
    split = [json.loads(x)["input"] for n in ("train", "validation") for x in (data / f"{n}.jsonl").open()]  # fmt: skip
    assert len(accepted) >= 12 and sorted(split) == sorted(accepted)
    assert not (data / "test.jsonl").exists() or not (data / "test.jsonl").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["test"] == str(test) and all(r["n"] == 2 for r in report["reports"])
