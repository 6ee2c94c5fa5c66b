"""Exact and near-duplicate detection on inputs, and the leak guard for protected inputs.

Exact: xxh3-64 of the normalised input (NFKC, whitespace collapsed, lower-cased), so "Foo  bar"
and "foo bar" are one input. Near: MinHash LSH (`NearDupIndex`) over word unigrams+bigrams, the
self-instruct/distilabel recipe for paraphrase-level repeats. Very short inputs (< `min_words`
words) are only deduplicated exactly: for "20.08.2010" vs "21.08.2010" any n-gram overlap says
"near-duplicate" although they are different examples the student needs.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import xxhash

from distill.generate.vote import normalise_text


def input_key(text: str) -> str:
    """Stable 16-hex-digit key of a normalised input (the unit of dedup and of voting)."""
    return normalised_key(normalise_text(text, lowercase=True))


def normalised_key(norm: str) -> str:
    """`input_key` of a text already normalised with `normalise_text(..., lowercase=True)`."""
    return xxhash.xxh3_64_hexdigest(norm.encode("utf-8"))


def _shingles(words: list[str]) -> set[str]:
    """Word unigrams and bigrams (of an already normalised text)."""
    return {*words, *map(" ".join, itertools.pairwise(words))}


@functools.lru_cache(maxsize=64)
def lsh_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """Bands b and rows r (b * r <= num_perm) whose S-curve 1 - (1 - s^r)^b best splits at
    `threshold`: minimises the area of false positives below it plus false negatives above it
    (the criterion datasketch uses, equal weights)."""
    s = np.linspace(0.0, 1.0, 201)
    best, best_cost = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            p = 1.0 - (1.0 - s**r) ** b
            cost = np.trapezoid(np.where(s < threshold, p, 1.0 - p), s)
            if cost < best_cost:
                best, best_cost = (b, r), cost
    return best


class Signature(NamedTuple):
    """A text's MinHash and its LSH bucket keys (valid for indexes with the same threshold,
    `num_perm` and seed, which share permutations and bands)."""

    values: np.ndarray  # (num_perm,) uint32: min over shingles of each permuted hash
    bands: list[bytes]  # one key a band: the band's rows as raw bytes


class NearDupIndex:
    """MinHash LSH over inputs: `query` says whether a similar input was already added.

    A small self-contained implementation (numpy + xxhash) of the datasketch recipe: 32-bit
    affine permutations of xxh32 shingle hashes, banded into b buckets of r rows. Candidates from
    the buckets are verified against their stored signature (estimated Jaccard >= threshold),
    so the LSH's false positives are dropped. Why not datasketch itself: measured here at 256
    requests in flight it cost ~110 us an input (MinHash object set-up plus per-band byteswaps),
    two thirds of the sampler's CPU; this costs ~12 us and gives the same estimates.
    A text is hashed once (`Signature`, bucket keys included) for the leak guard's query, this
    index's query and the add.
    """

    def __init__(self, threshold: float, *, num_perm: int = 128, min_words: int = 4, seed: int = 1):
        self.enabled = threshold < 1.0
        self.threshold = threshold
        self.min_words = min_words
        rng = np.random.RandomState(seed)
        # odd multipliers: a bijection on 32-bit values
        self._a = rng.randint(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32) | 1
        self._b = rng.randint(0, 1 << 32, size=num_perm, dtype=np.uint64).astype(np.uint32)
        bands, rows = lsh_params(threshold, num_perm) if self.enabled else (1, num_perm)
        # byte ranges of the bands in the signature's raw bytes (4 bytes a row)
        self._ranges = [(4 * i * rows, 4 * (i + 1) * rows) for i in range(bands)]
        self._tables: list[dict[bytes, list[int]]] = [{} for _ in range(bands)]
        self._sigs: list[np.ndarray] = []

    def minhash(self, text: str) -> Signature | None:
        """The signature of `text`; None when disabled or the text is short."""
        if not self.enabled:
            return None
        return self.minhash_normalised(normalise_text(text, lowercase=True))

    def minhash_normalised(self, norm: str) -> Signature | None:
        """`minhash` of a text already normalised with `normalise_text(..., lowercase=True)`."""
        if not self.enabled:
            return None
        words = norm.split()
        if len(words) < self.min_words:
            return None
        grams = _shingles(words)
        hv = np.array(list(map(xxhash.xxh32_intdigest, map(str.encode, grams))), np.uint32)
        # (grams, num_perm) permuted hashes; uint32 array arithmetic wraps (mod 2^32) on
        # purpose, and numpy never warns about integer overflow in array operations.
        permuted = np.multiply.outer(hv, self._a)
        np.add(permuted, self._b, out=permuted)
        values = permuted.min(axis=0)
        raw = values.tobytes()
        return Signature(values, [raw[lo:hi] for lo, hi in self._ranges])

    def query(self, text: str, sig: Signature | None = None) -> bool:
        """True when an added input has estimated Jaccard similarity >= threshold."""
        if not self._sigs:  # nothing indexed (e.g. only short protected inputs): no hashing
            return False
        sig = sig if sig is not None else self.minhash(text)
        if sig is None:
            return False
        seen: set[int] = set()
        need = self.threshold * sig.values.size
        for table, band in zip(self._tables, sig.bands, strict=True):
            for cand in table.get(band, ()):
                if cand not in seen:
                    seen.add(cand)
                    if np.count_nonzero(self._sigs[cand] == sig.values) >= need:
                        return True
        return False

    def add(self, text: str, sig: Signature | None = None) -> None:
        """Index `text` for later queries (no-op for short inputs or when disabled)."""
        sig = sig if sig is not None else self.minhash(text)
        if sig is None:
            return
        ident = len(self._sigs)
        self._sigs.append(sig.values)
        for table, band in zip(self._tables, sig.bands, strict=True):
            table.setdefault(band, []).append(ident)

    def check_and_add(self, text: str) -> bool:
        """Query then add when new; returns True if `text` was a near-duplicate."""
        sig = self.minhash(text)
        if sig is None:
            return False
        if self.query(text, sig):
            return True
        self.add(text, sig)
        return False


class LeakGuard:
    """Blocks inputs equal or near-equal to the demonstrations and the held-out test inputs.

    The training set must never contain a test input (the score would be a lie) nor a
    demonstration (already shown in every prompt, so it teaches nothing new and inflates counts).
    """

    def __init__(self, protected: Iterable[str], threshold: float):
        texts = [t for t in protected if t.strip()]
        self._keys = {input_key(t) for t in texts}
        self._near = NearDupIndex(threshold)
        for t in texts:
            self._near.add(t)
        self.size = len(self._keys)

    def leaks(self, text: str, m: Signature | None = None, key: str | None = None) -> bool:
        """True when `text` matches a protected input exactly (normalised) or nearly.

        `m`: the text's signature from a NearDupIndex with the same threshold and seed (same
        permutations), and `key` its `input_key`, to normalise and hash each input once.
        """
        key = key if key is not None else input_key(text)
        return key in self._keys or self._near.query(text, m)
