"""Train / validation / test splits of the accepted examples, by a seeded hash of the input.

Each input gets a point u in [0, 1) from xxh3(input, seed). Validation is the low band
u < validation_fraction (as before the test split existed, so validation sets did not move);
test is the high band u >= 1 - held_out_share; train is the rest. Because the bands depend only on
the input, a rerun gives the same three files, and an example keeps its side when the run is
extended with more examples: nothing that was train or validation ever becomes test.

`held_out_share` is `test_fraction`, raised so that the test set holds `min_test_examples` rows
where the data allows (at most a quarter of it): 10% of 300 examples is 30 rows, where one
disagreement moves the score by 3.3 points. The share can only fall as a run grows, so when it
does, a few test rows of a small run become train rows of the extended run, never the reverse.
Who must never see the test rows: training, early stopping and the int8 gate; `distill run`
scores the final student-vs-teacher table on them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import xxhash

BUCKETS = 10_000
MAX_TEST_SHARE = 0.25  # the minimum count never takes more than this from training
Row = TypeVar("Row", bound=dict)


@dataclass(frozen=True)
class Splits:
    """The three disjoint parts of the accepted examples, each in the order accepted."""

    train: list[dict[str, str]]
    validation: list[dict[str, str]]
    test: list[dict[str, str]]

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def bucket(text: str, seed: int) -> int:
    """The input's bucket in [0, BUCKETS): a pure function of the text and the seed."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8"), seed=seed) % BUCKETS


def held_out_share(
    n: int, fraction: float, min_count: int, validation_fraction: float = 0.0
) -> float:
    """The share of `n` examples that goes to test: `fraction`, raised toward `min_count / n`
    (capped at MAX_TEST_SHARE and below what validation leaves); 0 when `fraction` is 0."""
    if fraction <= 0 or n <= 0:
        return 0.0
    share = max(fraction, min(MAX_TEST_SHARE, min_count / n))
    return share if share + validation_fraction < 1.0 else fraction


def split_rows(
    rows: Sequence[dict[str, str]],
    validation_fraction: float,
    test_fraction: float = 0.0,
    min_test: int = 0,
    seed: int = 0,
) -> Splits:
    """Split `rows` (dicts with an 'input') into disjoint train / validation / test by hash.

    When the validation band happens to be empty but there is data to spare, the last train
    row becomes the one validation row (early stopping needs one); test rows are never moved.
    """
    v_cut = round(validation_fraction * BUCKETS)
    share = held_out_share(len(rows), test_fraction, min_test, validation_fraction)
    t_cut = BUCKETS - round(share * BUCKETS)
    train, val, test = [], [], []
    for row in rows:
        b = bucket(row["input"], seed)
        (val if b < v_cut else test if b >= t_cut else train).append(row)
    if validation_fraction > 0 and not val and len(train) > 1:
        val.append(train.pop())
    return Splits(train, val, test)


def pick_test_set(
    rows: Sequence[Row],
    fraction: float = 0.1,
    min_count: int = 50,
    seed: int = 0,
    validation_fraction: float = 0.1,
) -> tuple[list[Row], list[Row]]:
    """(rows not in test, test rows): the same test set `distill generate` writes to
    test.jsonl for the same rows and settings (`test_fraction`, `min_test_examples`, `seed`,
    `validation_fraction`), for callers that hold the examples but not the files."""
    share = held_out_share(len(rows), fraction, min_count, validation_fraction)
    t_cut = BUCKETS - round(share * BUCKETS)
    rest, test = [], []
    for row in rows:
        (test if bucket(row["input"], seed) >= t_cut else rest).append(row)
    return rest, test
