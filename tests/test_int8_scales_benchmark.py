"""benchmarks/int8_scales.py: one run's model exported with per-tensor and per-channel scales
(a tiny T5), both scored on the run's test set with the task's headline metric, paired, timed;
a run without a trained model is refused."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "benchmarks"))

import int8_scales  # noqa: E402
import tiny_models  # noqa: E402


@pytest.mark.slow  # two ONNX exports of the tiny T5: about a minute
def test_both_scales_are_exported_scored_paired_and_timed(tmp_path, monkeypatch) -> None:
    """Each export records the scales it was asked for; each arm's score is its exact matches
    against gold (address's headline metric) and the pairing is their difference."""
    from distill.evaluation.metrics import exact_match

    monkeypatch.setattr(int8_scales, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(int8_scales, "LATENCY_INPUTS", 4)
    run = tmp_path / "address-t9"
    tiny_models.make_t5_dir(run / "model")
    inputs = tiny_models.random_inputs(9, seed=2)
    gold = [x.split()[0] for x in inputs]
    (run / "test.jsonl").write_text(
        "".join(
            json.dumps({"input": x, "output": g}) + "\n" for x, g in zip(inputs, gold, strict=True)
        )
    )
    assert int8_scales.main(["--run", str(run), "--name", "scales"]) == 0
    (row,) = json.loads((tmp_path / "results" / "scales.json").read_text())
    assert row["run"] == "address-t9" and row["metric"] == "em" and row["n"] == 9
    for scales in int8_scales.SCALES:
        report = json.loads((run / "int8_scales" / scales / "export_report.json").read_text())
        assert report["settings"]["int8_scales"] == scales
        arm = row[scales]
        assert arm["ships"] == report["runtime_precision"]
        assert arm["score"] == round(100 * exact_match(arm["answers"], gold).score, 2)
    diff = row["per_channel_minus_per_tensor"]["diff"]
    assert diff == pytest.approx(row["per_channel"]["score"] - row["per_tensor"]["score"], abs=0.02)
    assert row["latency"]["ratio"] > 0
    assert (tmp_path / "results" / "scales.md").read_text().count("| address-t9 |") == 1


def test_a_run_without_a_trained_model_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "test.jsonl").write_text('{"input": "a", "output": "a"}\n')
    assert int8_scales.main(["--run", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{tmp_path / 'model' / 'distill.json'} is missing" in err
