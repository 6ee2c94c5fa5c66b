"""The run directory: append-only logs, resume, fingerprint, and the final artefacts.

Files in `out_dir`:
- `journal.jsonl`: one line when request i is issued and one when it completes, with the raw
  teacher text (and one when it is cancelled, or refused by the budget; a `resume` line starts
  what a resumed session wrote). It is the source of truth for resume: replaying it through the
  same pure state machine rebuilds counts, the label queue, open votes, the few-shot pool and
  the annealing position exactly, and nothing already answered is asked again. Lines are
  flushed (a SIGKILL keeps them: the data is in the kernel), not fsync'd one by one (0.1+ ms
  each would cost more than the sampler).
- `examples.jsonl` / `rejected.jsonl`: accepted examples and rejections (with `reason`),
  appended and flushed as they happen, fsync'd in groups (`LogWriter`).
- `state.json`: the fingerprint; `manifest.json`, `train.jsonl`, `validation.jsonl`,
  `test.jsonl` (splits.py), `hf/`, and the dataset card `README.md` (card.py):
  written atomically at the end of every run (also a stopped one).
A torn last line (a kill in the middle of a write) is dropped when reading.

Why not fsync every line: a SIGKILL or crash of our process loses
nothing that was written and flushed (the data is in the kernel's page cache already); fsync
only guards against the *machine* going down. Measured here under load, one fsync took ~5 ms,
so per-line fsync was 90% of the sampler's time at 256 requests in flight. `LogWriter` flushes
every line and fsyncs from a background thread at most every `fsync_interval_s` (and on
close): a power cut loses at most that window.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import xxhash

from common.files import atomic_write_json, atomic_write_jsonl
from distill.generate.splits import Splits, split_rows

JOURNAL = "journal.jsonl"
EXAMPLES = "examples.jsonl"
REJECTED = "rejected.jsonl"
STATE = "state.json"
MANIFEST = "manifest.json"
CACHE = "teacher_cache.sqlite"
SPLIT_FILES = ("train.jsonl", "validation.jsonl", "test.jsonl")
CARD = "README.md"  # the dataset card (card.py)
CALIBRATION = "calibration.json"  # the content-free answers (calibration.py)
OUTPUTS = (JOURNAL, EXAMPLES, REJECTED, STATE, MANIFEST, CARD, CALIBRATION, *SPLIT_FILES)


# json.dumps(row, ensure_ascii=False) builds a JSONEncoder per call; this one is built once.
_encode = json.JSONEncoder(ensure_ascii=False).encode


class LogWriter:
    """Append-only JSONL: every line written and flushed; fsync'd by a background thread.

    The fsync runs off the event loop (it blocks for milliseconds on a busy disk and would stall
    every request in flight); the thread syncs at most every `fsync_interval_s` when lines were
    added, and `close` syncs what is left. Lines are `json.dumps(row, ensure_ascii=False)` in
    UTF-8, written through a binary file (no text layer: a line is one encode and one write).
    """

    def __init__(self, path: Path, fsync_interval_s: float = 0.5) -> None:
        truncate_torn_tail(path)
        self.fh = open(path, "ab")  # noqa: SIM115 (closed in close())
        self.interval = fsync_interval_s
        self._dirty = False
        self._prefix: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sync_loop, daemon=True, name="log-fsync")
        self._thread.start()

    def prefix_next(self, row: dict[str, Any]) -> None:
        """Write `row` just before the next row, if one is ever written."""
        self._prefix = row

    def __call__(self, row: dict[str, Any]) -> None:
        if self._prefix is not None:
            prefix, self._prefix = self._prefix, None
            self(prefix)
        self.fh.write((_encode(row) + "\n").encode("utf-8"))
        self.fh.flush()
        self._dirty = True

    def _sync_loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self._dirty:
                self._dirty = False
                os.fsync(self.fh.fileno())

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


class RunDirConflict(Exception):
    """The output directory holds a run with other settings (message says what to do)."""


def fingerprint(payload: dict[str, Any]) -> str:
    """xxh3-64 of the canonical JSON of everything that decides what the run produces."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return xxhash.xxh3_64_hexdigest(blob)


def read_log(path: Path) -> list[dict[str, Any]]:
    """Rows of an append-only JSONL log; a torn (unparsable) LAST line is dropped.

    Only the last line can be torn by a kill; a bad line elsewhere means the file was edited or
    corrupted, and guessing would mix data, so that raises.
    """
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    rows = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if any(rest.strip() for rest in lines[n + 1 :]):
                raise ValueError(f"{path}:{n + 1}: corrupt line in the middle of the log") from None
    return rows


def truncate_torn_tail(path: Path) -> None:
    """Cut a partial last line (no trailing newline) so appends start on a fresh line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with open(path, "r+b") as fh:
            fh.truncate(cut)


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two fingerprint payloads (added and removed
    keys included), so a refused rerun can say which setting moved, e.g. `settings.seed`."""
    out: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{prefix}{key}.")
        elif key not in old or key not in new or a != b:
            out.append(f"{prefix}{key}")
    return out


def prepare_run_dir(out_dir: Path, fp: str, settings: dict[str, Any], overwrite: bool) -> bool:
    """Check or claim `out_dir` for fingerprint `fp`; return True when resuming a run.

    A directory with another fingerprint (or with data but no state) is refused unless
    `overwrite`, in which case our files are deleted first. The teacher cache is kept: its key
    is the whole request (model, messages, sampling, seed), so it can only replay an answer to
    the identical request, and a cache copied in from another run saves paying for it twice.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE
    existing = json.loads(state_path.read_text()) if state_path.is_file() else None
    has_data = any((out_dir / name).exists() for name in (JOURNAL, EXAMPLES, REJECTED))
    if existing and existing.get("fingerprint") == fp:
        return True
    if (existing or has_data) and not overwrite:
        old = existing.get("fingerprint") if existing else "unknown"
        changed = changed_keys(existing.get("settings") or {}, settings) if existing else []
        what = f"changed: {', '.join(changed)}; " if changed else ""
        raise RunDirConflict(
            f"{out_dir} holds a run with different settings ({what}fingerprint {old}, now "
            f"{fp}); use a fresh --out directory, or --overwrite to discard it"
        )
    for name in (*OUTPUTS, "hf"):
        target = out_dir / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    atomic_write_json(state_path, {"fingerprint": fp, "settings": settings})
    return False


def split_examples(
    examples: list[dict[str, str]], fraction: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Train/validation only (no test split), by a seeded hash of each input (splits.py).

    Hash-based rather than shuffled: an example stays on its side when the run is extended
    with more examples, so validation never leaks into a later train split.
    """
    parts = split_rows(examples, fraction, 0.0, 0, seed)
    return parts.train, parts.validation


def write_splits(
    out_dir: Path,
    examples: list[dict[str, str]],
    fraction: float,
    seed: int,
    *,
    test_fraction: float = 0.0,
    min_test: int = 0,
) -> dict[str, int]:
    """train.jsonl, validation.jsonl, test.jsonl and the `hf/` DatasetDict; returns the sizes.

    Rows keep `label_probs` (the teacher's distribution over the label set, soft.py) and
    `rationale` (the teacher's reasoning with --chain-of-thought, rationale.py) where the
    example has them.
    """
    rows = [_split_row(e) for e in examples]
    parts = split_rows(rows, fraction, test_fraction, min_test, seed)
    for name, part in zip(SPLIT_FILES, (parts.train, parts.validation, parts.test), strict=True):
        atomic_write_jsonl(out_dir / name, part)
    _write_hf(out_dir / "hf", parts)
    return parts.sizes()


def _split_row(example: dict[str, Any]) -> dict[str, Any]:
    row = {"input": example["input"], "output": example["output"]}
    for key in ("label_probs", "rationale"):
        if key in example:
            row[key] = example[key]
    return row


def _write_hf(path: Path, parts: Splits) -> None:
    """`datasets.load_from_disk`-compatible copy, swapped into place atomically.

    With soft labels, a `label_probs` column: a list of `{"label", "prob"}` in the label set's
    order (a struct per label name would give every label set its own schema), empty for an
    example without a distribution. With rationales, a `rationale` column (null without one).
    """
    from datasets import Dataset, DatasetDict, Features, List, Value, disable_progress_bars

    from common.files import atomic_dir

    columns = {"input": Value("string"), "output": Value("string")}
    soft = any(
        "label_probs" in r for split in (parts.train, parts.validation, parts.test) for r in split
    )
    if soft:
        columns["label_probs"] = List({"label": Value("string"), "prob": Value("float64")})
    rationales = any(
        "rationale" in r for split in (parts.train, parts.validation, parts.test) for r in split
    )
    if rationales:
        columns["rationale"] = Value("string")
    features = Features(columns)

    def build(rows: list[dict]) -> Dataset:
        cols: dict[str, list] = {
            "input": [r["input"] for r in rows],
            "output": [r["output"] for r in rows],
        }
        if soft:
            cols["label_probs"] = [
                [{"label": k, "prob": v} for k, v in r.get("label_probs", {}).items()] for r in rows
            ]
        if rationales:  # None (null) for an example whose teacher answer gave no reasoning
            cols["rationale"] = [r.get("rationale") for r in rows]
        return Dataset.from_dict(cols, features=features)

    disable_progress_bars()  # our own tqdm bar is the one the user watches
    with atomic_dir(path) as tmp:
        splits = {"train": parts.train, "validation": parts.validation, "test": parts.test}
        DatasetDict({k: build(v) for k, v in splits.items()}).save_to_disk(str(tmp))
