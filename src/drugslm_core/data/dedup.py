"""Exact and near-duplicate detection over question+answer text (MinHash LSH from datasketch).

The first record of a group is kept; every later one is reported with the id of the
record it duplicates, so the caller can quarantine it with ``duplicate_of:<id>``.
Records without a question or answer, and records a reader rejected, are not compared (the quality
gate handles them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from drugslm_core.config import DedupSettings
from drugslm_core.data.records import QARecord

_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Duplicate:
    index: int
    kept_index: int
    kind: str
    """``exact`` or ``near``."""
    similarity: float


def dedup_key(record: QARecord) -> str:
    return " ".join(f"{record.question}\n{record.answer}".casefold().split())


def shingles(text: str, size: int) -> set[bytes]:
    words = _WORD.findall(text.casefold())
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i:i + size]).encode() for i in range(len(words) - size + 1)}


def find_duplicates(records: Sequence[QARecord], settings: DedupSettings) -> list[Duplicate]:
    """Duplicates in input order; each points at the earliest kept record it repeats."""
    duplicates: list[Duplicate] = []
    comparable = [
        i for i, r in enumerate(records)
        if r.rejected is None and r.question and r.question.strip() and r.answer and r.answer.strip()
    ]
    exact_kept: dict[str, int] = {}
    survivors = []
    for i in comparable:
        digest = hashlib.sha1(dedup_key(records[i]).encode()).hexdigest()
        if settings.exact and digest in exact_kept:
            duplicates.append(Duplicate(i, exact_kept[digest], "exact", 1.0))
        else:
            exact_kept.setdefault(digest, i)
            survivors.append(i)
    if settings.near and len(survivors) > 1:
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=settings.threshold, num_perm=settings.num_perm)
        hashes: dict[int, MinHash] = {}
        for i in tqdm(survivors, desc="near-duplicates", unit="rec", disable=len(survivors) < 2000):
            minhash = MinHash(num_perm=settings.num_perm, seed=1)
            minhash.update_batch(list(shingles(dedup_key(records[i]), settings.shingle_words)))
            candidates = sorted(int(key) for key in lsh.query(minhash))
            match = next(
                ((k, s) for k in candidates if (s := minhash.jaccard(hashes[k])) >= settings.threshold), None
            )
            if match is not None:
                duplicates.append(Duplicate(i, match[0], "near", round(match[1], 3)))
            else:
                lsh.insert(str(i), minhash)
                hashes[i] = minhash
    return sorted(duplicates, key=lambda d: d.index)
