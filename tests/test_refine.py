"""`distill refine` on real parts: the loopback OpenAI server as teacher, a tiny encoder-decoder
student trained for real, the CLI as users call it.

The teacher labels `word_phrase(k)` inputs "yes", except every fourth "no" and every tenth
(k % 10 == 7) "maybe", outside the task's label set (so generate rejects it and the input stays
unused, though its label request is in the cache). A write-similar request answers, for each
seed it shows, one new pair, one copy of the seed (a duplicate) and one out-of-set pair.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tiny_models import tiny_encoder_decoder_dir

from distill.cli import main
from distill.generate.calibration import CONTENT_FREE_INPUTS
from distill.refine.rounds import decide
from teachers.testing import FakeOpenAIServer, word_phrase

TASK = """
name = "yesno"
instruction = "Answer yes or no."
[[demonstrations]]
input = "is the sky blue"
output = "yes"
[[demonstrations]]
input = "is fire cold"
output = "no"
[generate]
labels = ["yes", "no"]
"""
SIMILAR_MARK = "got these examples wrong"
N_GENERATE, N_POOL = 40, 80  # generate labels inputs 0..39; the pool file holds 0..79


def label_of(key: int) -> str:
    return "maybe" if key % 10 == 7 else ("no" if key % 4 == 0 else "yes")


def key_of(text: str) -> int:
    return int(text.split()[-1].split("-")[0])


def is_similar(body: dict) -> bool:
    return SIMILAR_MARK in body["messages"][-1]["content"]


def seeds_of(body: dict) -> list[str]:
    """The seed inputs a write-similar request shows (one JSON object a line)."""
    lines = re.findall(r'^\{"input".*\}$', body["messages"][-1]["content"], re.MULTILINE)
    return [json.loads(x)["input"] for x in lines]


def responder(body: dict, index: int) -> str:
    if is_similar(body):
        pairs = []
        for seed in seeds_of(body):
            k = key_of(seed)
            pairs += [
                {"input": f"{seed}-similar", "output": label_of(k)},
                {"input": seed, "output": label_of(k)},  # a copy: refused as a duplicate
                {"input": f"{seed}-odd", "output": "perhaps"},  # out of the label set
            ]
        return json.dumps(pairs)
    text = body["messages"][-1]["content"]
    if text in CONTENT_FREE_INPUTS:  # label calibration's requests (auto, the default)
        return "yes"
    return label_of(key_of(text))


def label_inputs(body: dict) -> str | None:
    return None if is_similar(body) else body["messages"][-1]["content"]


def _write_inputs(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"input": word_phrase(k)}) + "\n" for k in range(n)))
    return path


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RUN with data/ (generate, label mode) and model/ (a tiny student trained on it)."""
    root = tmp_path_factory.mktemp("base")
    (root / "task.toml").write_text(TASK)
    _write_inputs(root / "inputs.jsonl", N_GENERATE)
    _write_inputs(root / "pool.jsonl", N_POOL)
    student = tiny_encoder_decoder_dir(root / "student")
    run = root / "run"
    with FakeOpenAIServer(responder) as server:
        assert main([
            "generate", "--task", str(root / "task.toml"), "--out", str(run / "data"),
            "--inputs", str(root / "inputs.jsonl"), "--teacher", server.base_url,
            "--model", "fake", "--validation-fraction", "0.2", "--max-tokens", "64",
        ]) == 0  # fmt: skip
    assert main([
        "train", "--data", str(run / "data"), "--out", str(run / "model"),
        "--task", str(root / "task.toml"), "--student", str(student), "--epochs", "8",
        "--lr", "1e-2", "--batch-size", "32", "--max-eval-examples", "50",
    ]) == 0  # fmt: skip
    return root


def _copy(base_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(base_run, tmp_path, dirs_exist_ok=True)
    return tmp_path


def refine_args(root: Path, url: str, *extra: str) -> list[str]:
    return [
        "refine", "--task", str(root / "task.toml"), "--out", str(root / "run"),
        "--pool-inputs", str(root / "pool.jsonl"), "--pool-size", "20",
        "--teacher", url, "--model", "fake", "--max-in-flight", "2", "--round-epochs", "1",
        *extra,
    ]  # fmt: skip


def rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_similar_requests_go_only_to_disagreements_and_replays_cost_nothing(
    base_run: Path, tmp_path: Path
) -> None:
    root = _copy(base_run, tmp_path)
    run = root / "run"
    labelled = {r["input"] for r in rows(run / "data" / "rejected.jsonl") if "input" in r}
    with FakeOpenAIServer(responder) as server:
        assert main(refine_args(root, server.base_url)) == 0
        first = list(server.requests)
        assert main(refine_args(root, server.base_url)) == 0
        assert server.requests[len(first) :] == []  # a finished round is not redone
    rdir = run / "refine" / "round-1"
    pool = [r["input"] for r in rows(rdir / "pool.jsonl")[1:]]
    preds = {r["input"]: r["prediction"] for r in rows(rdir / "predictions.jsonl")}
    labels = {r["input"]: r["output"] for r in rows(rdir / "labels.jsonl")}
    wrong = [r["input"] for r in rows(rdir / "disagreements.jsonl")]
    agreed = [t for t in pool if labels[t] is not None and labels[t] == preds[t].strip()]
    assert wrong and agreed  # both kinds exist, so the next lines can fail
    seeds = [s for body in first if is_similar(body) for s in seeds_of(body)]
    assert sorted(seeds) == sorted(wrong)
    assert not set(seeds) & set(agreed)
    assert sum(map(is_similar, first)) == -(-len(wrong) // 3)  # one request per 3 seeds
    # A write-similar answer holds 3 pairs: it gets --similar-max-tokens (512), not the 64
    # tokens generate's label requests had (which cut every such answer of a real run).
    assert {b["max_tokens"] for b in first if is_similar(b)} == {512}
    assert {b["max_tokens"] for b in first if not is_similar(b)} == {64}
    # Inputs generate asked about (and rejected: "maybe") are in the pool, yet cost nothing.
    replayed = [t for t in pool if t in labelled]
    assert replayed
    asked = [label_inputs(b) for b in first]
    assert not set(replayed) & set(asked)
    assert len([a for a in asked if a is not None]) == len(pool) - len(replayed)
    # What joins training: each disagreement and its one good new pair; copies and
    # out-of-set pairs are refused with generate's reasons.
    added = rows(rdir / "added.jsonl")
    assert added == [{"input": t, "output": labels[t]} for t in wrong] + [
        {"input": f"{t}-similar", "output": labels[t]} for t in wrong
    ]
    reasons = [r["reason"] for r in rows(rdir / "rejected.jsonl")]
    assert sorted(reasons) == sorted(["duplicate", "out_of_label_set"] * len(wrong))


def sent(journal: Path) -> int:
    """Journaled answers that came from the server (not the cache)."""
    return sum(r["sent"] for r in rows(journal)) if journal.is_file() else 0


def _wait(until, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not until():
        time.sleep(0.02)


def test_sigterm_mid_round_then_rerun_pays_nothing_twice_and_ends_the_same(
    base_run: Path, tmp_path: Path
) -> None:
    """A round killed (SIGTERM) while request K+1 hangs, then rerun: the rerun sends only what
    the killed run never got answered (request K+1 again, whose answer never arrived, and the
    rest), and the round's data equals an uninterrupted run's."""
    whole, cut = _copy(base_run, tmp_path / "whole"), _copy(base_run, tmp_path / "cut")
    with FakeOpenAIServer(responder) as server:
        assert main(refine_args(whole, server.base_url, "--max-in-flight", "1")) == 0
        reference = [json.dumps(b, sort_keys=True) for b in server.requests]
    k = 6
    hang = lambda body, index: "slow" if index == k else None  # noqa: E731
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    journal = cut / "run" / "refine" / "round-1" / "journal.jsonl"
    with FakeOpenAIServer(responder, fault_fn=hang, slow_s=60) as server:
        cmd = [
            sys.executable,
            "-m",
            "distill",
            *refine_args(cut, server.base_url, "--max-in-flight", "1"),
        ]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        _wait(lambda: len(server.requests) > k and journal.is_file() and sent(journal) == k)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 143, stderr
        assert "interrupted; run the same command again to resume" in stderr
        assert sent(journal) == k and len(server.requests) == k + 1
        assert main(refine_args(cut, server.base_url, "--max-in-flight", "1")) == 0
        bodies = [json.dumps(b, sort_keys=True) for b in server.requests]
    assert len(bodies) == len(reference) + 1
    assert sorted(bodies[:k] + bodies[k + 1 :]) == sorted(reference)
    assert bodies[k] in bodies[k + 1 :]  # only the request in flight at the kill went twice
    for name in ("labels.jsonl", "disagreements.jsonl", "added.jsonl", "data/train.jsonl"):
        a, b = (root / "run" / "refine" / "round-1" / name for root in (whole, cut))
        assert a.read_text() == b.read_text(), name
    manifests = [json.loads((r / "run/refine/manifest.json").read_text()) for r in (whole, cut)]
    whole_teacher, cut_teacher = (m["rounds"][0]["teacher"]["all"] for m in manifests)
    assert whole_teacher == cut_teacher  # the journal keeps the killed session's calls


def test_stop_rule_keeps_the_best_model_and_the_manifest_has_every_round(
    base_run: Path, tmp_path: Path
) -> None:
    """--min-gain 1000 cannot be met: one round of three runs; RUN/model is the better of the
    model before and the round's; the manifest says what the round asked, cost and scored."""
    root = _copy(base_run, tmp_path)
    run = root / "run"
    prices = root / "prices.json"
    prices.write_text(json.dumps({"fake": {"input": 1000.0, "output": 2000.0}}))
    before = json.loads((run / "model" / "metrics.json").read_text())
    with FakeOpenAIServer(responder) as server:
        args = refine_args(root, server.base_url, "--rounds", "3", "--min-gain", "1000")
        assert main([*args, "--prices-file", str(prices)]) == 0
        sent = list(server.requests)
    manifest = json.loads((run / "refine" / "manifest.json").read_text())
    assert manifest["rounds_run"] == 1 and len(manifest["rounds"]) == 1
    assert manifest["stopped"] == "gain_below_min_gain"
    assert not (run / "refine" / "round-2").exists()
    (rnd,) = manifest["rounds"]
    score = rnd["score"]
    # a yes/no task: the best epoch was picked by exact match, and rounds compare on it
    assert before["settings"]["metric_for_best"] == "exact_match"
    assert score["metric"] == "exact_match"
    assert score["before"] == before["best"]["val_exact_match"]
    assert score["gain_points"] == pytest.approx(100 * (score["after"] - score["before"]))
    now = json.loads((run / "model" / "metrics.json").read_text())["best"]["val_exact_match"]
    assert now == max(score["before"], score["after"])
    assert rnd["kept"] == (score["after"] > score["before"]) == manifest["model_replaced"]
    # calls, tokens and cost, per kind, as the server saw them
    n_similar = sum(map(is_similar, sent))
    teacher = rnd["teacher"]
    assert teacher["similar"]["requests_sent"] == n_similar == -(-rnd["disagreements"] // 3)
    assert teacher["label"]["requests_sent"] == len(sent) - n_similar
    assert teacher["all"]["requests_sent"] == len(sent)
    assert teacher["label"]["requests"] == rnd["pool"]["size"] == 20
    tokens = teacher["all"]["prompt_tokens"], teacher["all"]["completion_tokens"]
    assert teacher["all"]["cost_usd"] == pytest.approx((tokens[0] * 1000 + tokens[1] * 2000) / 1e6)
    assert teacher["all"]["cost_usd"] > 0
    assert manifest["teacher"]["cost_usd"] == pytest.approx(teacher["all"]["cost_usd"])
    assert rnd["disagreements"] == len(rows(run / "refine" / "round-1" / "disagreements.jsonl"))
    assert rnd["added"]["total"] == 2 * rnd["disagreements"]
    assert rnd["similar_rejected_by_reason"] == {
        "duplicate": rnd["disagreements"],
        "out_of_label_set": rnd["disagreements"],
    }


@pytest.mark.parametrize(
    ("before", "after", "metric", "expected"),
    [
        (0.50, 0.60, "chrf", (10.0, True, False)),  # +10 points: keep, go on
        (0.50, 0.503, "chrf", (0.3, True, True)),  # better, but below min_gain: keep, stop
        (0.50, 0.40, "exact_match", (-10.0, False, True)),  # worse: keep the old one, stop
        (2.0, 1.5, "loss", (50.0, True, False)),  # a lower loss is a gain
        (0.50, None, "chrf", (None, False, True)),  # no retraining (nothing to add): stop
    ],
)
def test_decide(before: float, after: float | None, metric: str, expected: tuple) -> None:
    gain, kept, stop = decide(before, after, metric, min_gain=0.5)
    assert (None if gain is None else pytest.approx(gain), kept, stop) == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--pool-size", "0"], "--pool-size: must be > 0 (got 0)"),
        (["--min-gain", "-1"], "--min-gain: must be a finite number >= 0 (got -1.0)"),
        (["--rounds", "-2"], "--rounds: must be >= 0 (got -2)"),
        (["--pool-inputs", "missing.jsonl"], "--pool-inputs: missing.jsonl: file not found"),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    base_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
    message: str,
) -> None:  # fmt: skip
    assert main(refine_args(base_run, "http://127.0.0.1:9/v1", *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(SystemExit) as caught:
        main(refine_args(base_run, "http://127.0.0.1:9/v1", "--pool-size", "ten"))
    assert caught.value.code == 2
    assert "argument --pool-size: invalid int value: 'ten'" in capsys.readouterr().err


def test_without_a_pool_and_a_table_key_error(tmp_path: Path, base_run: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """No --pool-inputs and data not labelled from --inputs: exit 2 naming the flag; a bad
    [refine] key in task.toml names the file and the key."""
    root = _copy(base_run, tmp_path)
    manifest = root / "run" / "data" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["settings"].update(inputs=None, mode="synthesize")
    manifest.write_text(json.dumps(data))
    args = refine_args(root, "http://127.0.0.1:9/v1")
    i = args.index("--pool-inputs")
    assert main(args[:i] + args[i + 2 :]) == 2
    assert "--pool-inputs / [refine] pool_inputs: needed" in capsys.readouterr().err
    (root / "task.toml").write_text(TASK + "[refine]\npool_sise = 3\n")
    assert main(refine_args(root, "http://127.0.0.1:9/v1")) == 2
    err = capsys.readouterr().err
    assert "[refine]: unknown key 'pool_sise'; did you mean 'pool_size'?" in err
    assert err.count("\n") == 1


def test_distill_run_with_rounds_refines_after_training_and_a_rerun_pays_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`distill run --rounds 1`: generate, train, one round (its model is what export and eval
    get), the report; the same command again sends no request and redoes no round."""
    (tmp_path / "task.toml").write_text(TASK)
    _write_inputs(tmp_path / "inputs.jsonl", N_GENERATE)
    _write_inputs(tmp_path / "pool.jsonl", N_POOL)
    student = tiny_encoder_decoder_dir(tmp_path / "student")
    out = tmp_path / "run"
    argv = [
        "run", "--task", str(tmp_path / "task.toml"), "--out", str(out),
        "--inputs", str(tmp_path / "inputs.jsonl"), "--teacher", "URL", "--model", "fake",
        "--student", str(student), "--epochs", "2", "--lr", "1e-2", "--batch-size", "32",
        "--rounds", "1", "--pool-inputs", str(tmp_path / "pool.jsonl"), "--pool-size", "20",
        "--round-epochs", "1", "--min-gain", "0", "--skip-teacher-eval", "--max-new-tokens", "4",
    ]  # fmt: skip
    with FakeOpenAIServer(responder) as server:
        argv[argv.index("URL")] = server.base_url
        assert main(argv) == 0
        first = server.count()
        manifest = json.loads((out / "refine" / "manifest.json").read_text())
        assert manifest["rounds_run"] == 1
        (rnd,) = manifest["rounds"]
        assert rnd["pool"]["size"] == 20
        assert (out / "report.json").is_file() and (out / "onnx" / "export_report.json").is_file()
        assert main(argv) == 0
        assert server.count() == first  # nothing asked twice
    assert json.loads((out / "refine" / "manifest.json").read_text()) == manifest
