"""Which inputs a round probes the student with, and the checks new examples must pass.

Both use generate's own pieces (`distill.generate.dedup`): the normalised-key `LeakGuard`
that keeps test inputs, `--exclude` inputs and the demonstrations out of the data, and exact
plus MinHash near-duplicate detection against everything already in the data.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from distill.generate import filters as F
from distill.generate.dedup import LeakGuard, NearDupIndex, input_key


@dataclass
class Seen:
    """Inputs already in the data (exact keys and MinHash index) and the protected ones.

    `protected` (test split, --exclude, demonstrations) may never become training data; `add`
    registers an input that did, so a later pair with the same input is a duplicate.
    """

    protected: LeakGuard
    near: NearDupIndex
    keys: set[str] = field(default_factory=set)

    @classmethod
    def build(cls, protected: Iterable[str], known: Iterable[str], threshold: float) -> Seen:
        """`protected`: never to be trained on; `known`: already in the data."""
        seen = cls(LeakGuard(list(protected), threshold), NearDupIndex(threshold))
        for text in known:
            seen.add(text)
        return seen

    def add(self, text: str) -> None:
        """Register an input that is now part of the data (or of this round's pool)."""
        key = input_key(text)
        if key not in self.keys:
            self.keys.add(key)
            self.near.add(text)

    def reason(self, text: str) -> str | None:
        """Why `text` may not join the data (a generate rejection reason), or None."""
        key = input_key(text)
        if key in self.keys:
            return F.DUPLICATE
        sig = self.near.minhash(text)
        if self.protected.leaks(text, sig, key):
            return F.LEAK
        if self.near.query(text, sig):
            return F.NEAR_DUPLICATE
        return None


def select_pool(
    inputs: list[str], used: set[str], protected: LeakGuard, in_data: set[str], size: int
) -> tuple[list[str], Counter[str]]:
    """The next `size` inputs of the pool file, in file order, that no earlier round took
    (`used`: their keys), that are not in the data (`in_data`: keys of train, validation and
    test) and that the leak guard lets through; with the count of each reason for a skip.

    Only exact (normalised-key) matches with the data are skipped here: a near-duplicate of a
    training input is still a fair question to ask the student.
    """
    pool: list[str] = []
    skipped: Counter[str] = Counter()
    taken: set[str] = set()
    for text in inputs:
        if len(pool) >= size:
            break
        key = input_key(text)
        if key in used:
            continue  # an earlier round's: not counted, it was that round's pool
        if not text.strip():
            skipped[F.EMPTY_INPUT] += 1
        elif key in in_data:
            skipped["in_data"] += 1
        elif key in taken:
            skipped[F.DUPLICATE] += 1
        elif protected.leaks(text, None, key):
            skipped[F.LEAK] += 1
        else:
            taken.add(key)
            pool.append(text)
    return pool, skipped
