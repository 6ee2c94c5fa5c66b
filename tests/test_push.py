"""`distill push` against a loopback hub (tests/fake_hub.py) that speaks the upload API.

The real `huggingface_hub` client does the talking: repo creation, the card's YAML check,
preupload and the NDJSON commit. The fake hub records what arrived, so the tests compare the
bytes on the hub with the bytes on disk. No real hub is reached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fake_hub import FakeHub

from distill.cli import main

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "hf_FAKEtoken0123456789abcdefSECRET"
CARD = '---\nlicense: "mit"\ntags:\n- "distill"\n---\n# a card\n'

# run folder -> {relative path: bytes}; the working files that must stay local are listed apart.
RUN_FILES = {
    "data": {
        "README.md": CARD.encode(),
        "train.jsonl": b'{"input": "a", "output": "b"}\n' * 50,
        "validation.jsonl": b'{"input": "c", "output": "d"}\n',
        "test.jsonl": b"",  # an empty split still goes up
        "examples.jsonl": b'{"input": "a", "output": "b"}\n',
        "rejected.jsonl": b'{"input": "x", "reason": "duplicate"}\n',
        "manifest.json": b'{"accepted": 51}\n',
        "hf/dataset_dict.json": b'{"splits": ["train"]}',
        "hf/train/data-00000-of-00001.arrow": bytes(range(256)) * 40,
    },
    "model": {
        "README.md": CARD.encode(),
        "config.json": b'{"model_type": "t5"}',
        "model.safetensors": os.urandom(300_000),
        "tokenizer.json": b"{}",
    },
    "onnx": {
        "README.md": CARD.encode(),
        "encoder_model_int8.onnx": os.urandom(70_000),
        "decoder_model_int8.onnx": os.urandom(90_000),
    },
}
WORKING_FILES = {
    "data": {
        "journal.jsonl": b'{"i": 0, "raw": "teacher text"}\n',
        "state.json": b"{}",
        "teacher_cache.sqlite": b"SQLite format 3\x00",
        "teacher_cache.sqlite-wal": b"wal",
        ".manifest.json.k2j3.tmp": b"half-written",  # an interrupted atomic write
    },
    "model": {"checkpoints/last.pt": b"optimizer state", ".model.tmp/config.json": b"{}"},
    "onnx": {},
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    root = tmp_path / "dates-run"
    for part in RUN_FILES:
        for name, data in {**RUN_FILES[part], **WORKING_FILES[part]}.items():
            path = root / part / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    return root


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch):
    import huggingface_hub.constants

    # conftest.py sets HF_HUB_OFFLINE=1 for the suite; the client read it at import.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with FakeHub() as server:
        yield server


@pytest.mark.parametrize("xet", [True, False], ids=["xet-pipeline", "single-commit"])
def test_push_data_makes_a_private_dataset_with_every_file(
    hub: FakeHub,
    run_dir: Path,
    xet: bool,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """Both upload paths of huggingface_hub 2.4 (streamed when hf_xet is installed, one
    create_commit otherwise) go through preupload + commit; all files are "regular" here."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", not xet)
    argv = ["push", str(run_dir), "--what", "data", "--repo", "me/dates-data"]
    assert main([*argv, "--endpoint", hub.url]) == 0

    repo = hub.repo("dataset", "me/dates-data")
    assert repo.visibility == "private"
    assert repo.files == RUN_FILES["data"]  # every file, identical bytes; no working file
    assert [c["summary"] for c in repo.commits] == ["distill push: data/ of run dates-run"]
    assert hub.unknown == []
    assert {r.authorization for r in hub.requests} == {f"Bearer {TOKEN}"}
    assert hub.requests[0].path == "/api/repos/create"
    out, err = capfd.readouterr()
    assert f"{hub.url}/datasets/me/dates-data/commit/" in out
    assert TOKEN not in out + err

    # A second push keeps the repo (the hub answers 409 to create) and adds a commit.
    assert main([*argv, "--endpoint", hub.url]) == 0
    assert len(repo.commits) == 2


@pytest.mark.parametrize(("what", "public"), [("model", True), ("onnx", False)])
def test_push_model_and_onnx_to_model_repos_via_hf_endpoint(
    hub: FakeHub, run_dir: Path, what: str, public: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_ENDPOINT", hub.url)  # the standard variable, no --endpoint flag
    argv = ["push", str(run_dir), "--what", what, "--repo", f"team/dates-{what}"]
    assert main(argv + (["--public"] if public else [])) == 0
    repo = hub.repo("model", f"team/dates-{what}")
    assert repo.visibility == ("public" if public else "private")
    assert repo.files == RUN_FILES[what]


def test_dry_run_lists_files_and_sizes_without_network_or_token(
    hub: FakeHub, run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    argv = ["push", str(run_dir), "--what", "data", "--repo", "me/d", "--endpoint", hub.url]
    assert main([*argv, "--dry-run"]) == 0
    assert hub.requests == []
    out = capsys.readouterr().out
    listed = {line.split()[-1]: int(line.split()[0].replace(",", "")) for line in _file_lines(out)}
    assert listed == {name: len(data) for name, data in RUN_FILES["data"].items()}
    assert "dataset repo me/d (private)" in out
    for name in WORKING_FILES["data"]:
        assert name in out.splitlines()[-1]  # the "left out" line names them


def _file_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("  ") and "commit:" not in line]


@pytest.mark.parametrize(
    ("status", "route", "code"),
    [(401, "", 2), (403, "", 2), (404, "", 2), (503, "", 1), (403, "/commit/", 2)],
)
def test_hub_refusal_is_one_line_naming_repo_and_status(
    hub: FakeHub,
    run_dir: Path,
    status: int,
    route: str,
    code: int,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """4xx: the user must change the token, rights or repo first (exit 2, like bad input);
    5xx: the same command may work later (exit 1). The server echoes the token; we never do.
    `route` "/commit/": the repo is created, the upload itself is refused. (A 5xx there is
    retried by huggingface_hub for ~23 s before the same exit 1: not repeated here.)"""
    hub.fail_with(status, route)
    argv = ["push", str(run_dir), "--what", "model", "--repo", "me/m", "--endpoint", hub.url]
    assert main(argv) == code
    out, err = capfd.readouterr()
    assert TOKEN not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "me/m" in lines[0] and f"HTTP {status}" in lines[0]
    assert hub.requests and all(r.authorization == f"Bearer {TOKEN}" for r in hub.requests)


def test_401_in_a_real_process_leaks_no_token_and_no_traceback(hub: FakeHub, run_dir: Path) -> None:
    """The same through the console entry point: everything the process writes is checked."""
    hub.fail_with(401)
    env = {**os.environ, "HF_TOKEN": TOKEN, "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(ROOT)}
    argv = ["push", str(run_dir), "--what", "onnx", "--repo", "me/o", "--endpoint", hub.url]
    proc = subprocess.run(
        [sys.executable, "-m", "distill", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert TOKEN not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("distill push: error: ") and "me/o" in line and "HTTP 401" in line


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["--what", "data", "--repo", "no-owner"], "--repo: must be OWNER/NAME"),
        (["--what", "data", "--repo", "a/b/c"], "--repo: must be OWNER/NAME"),
        (["--what", "data", "--repo", "me/bad--name"], "--repo: must be OWNER/NAME"),
        (["--what", "data"], "--repo: required"),
        (["--repo", "me/x"], "--what: required"),
        (["--what", "data", "--repo", "me/x", "--endpoint", "hub.local"], "--endpoint: must be"),
    ],
)
def test_bad_flags_exit_2_in_one_line(
    hub: FakeHub, run_dir: Path, args: list[str], expect: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["push", str(run_dir), *args]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert expect in line
    assert hub.requests == []


def test_missing_run_folder_token_or_offline_mode_exit_2(
    hub: FakeHub, run_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fails(argv: list[str], expect: str) -> None:
        assert main(["push", *argv, "--endpoint", hub.url]) == 2
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert expect in line, line

    fails([str(run_dir.parent / "nope"), "--what", "data", "--repo", "me/x"], "no such run")
    shutil.rmtree(run_dir / "model")
    fails([str(run_dir), "--what", "model", "--repo", "me/x"], "`distill train` writes it")
    (run_dir / "onnx" / "README.md").unlink()
    fails([str(run_dir), "--what", "onnx", "--repo", "me/x"], "rerun `distill export`")
    monkeypatch.delenv("HF_TOKEN")
    fails([str(run_dir), "--what", "data", "--repo", "me/x"], "HF_TOKEN is not set")
    assert hub.requests == []

    import huggingface_hub.constants

    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    fails([str(run_dir), "--what", "data", "--repo", "me/x"], "HF_HUB_OFFLINE is set")
    assert hub.requests == []
