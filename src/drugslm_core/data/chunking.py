"""Split long text into chunks of at most ``max_chars``: fixed, sentence or recursive.

Every strategy keeps every word, in order (chunks are cut between words, never inside
one unless a single word is longer than a chunk). ``overlap_chars`` repeats the end of
the previous chunk at the start of the next, cut at a word boundary; chunks still fit
in ``max_chars``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9À-Ý])")
RECURSIVE_SEPARATORS = ("\n\n", "\n", ". ", "; ", ", ", " ")


def _hard_split(text: str, size: int) -> list[str]:
    """Pieces of at most ``size`` characters, cut at the last space when there is one."""
    pieces = []
    rest = text.strip()
    while len(rest) > size:
        cut = rest.rfind(" ", 0, size + 1)
        if cut <= 0:
            cut = size
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return pieces


def _pack(units: list[str], size: int, joiner: str) -> list[str]:
    """Greedily join consecutive units while the result fits in ``size``; oversize units are hard-split."""
    chunks: list[str] = []
    current = ""
    for unit in units:
        unit = unit.strip()
        if not unit:
            continue
        if len(unit) > size:
            if current:
                chunks.append(current)
                current = ""
            chunks.extend(_hard_split(unit, size))
            continue
        candidate = f"{current}{joiner}{unit}" if current else unit
        if len(candidate) <= size:
            current = candidate
        else:
            chunks.append(current)
            current = unit
    if current:
        chunks.append(current)
    return chunks


def fixed_chunks(text: str, size: int) -> list[str]:
    return _hard_split(text, size)


def sentence_chunks(text: str, size: int) -> list[str]:
    return _pack(_SENTENCE_END.split(text.strip()), size, " ")


def recursive_chunks(text: str, size: int, separators: tuple[str, ...] = RECURSIVE_SEPARATORS) -> list[str]:
    """Split at the coarsest separator that exists; pieces still too long are split at the next one."""
    text = text.strip()
    if len(text) <= size:
        return [text] if text else []
    for index, separator in enumerate(separators):
        if separator not in text:
            continue
        parts = text.split(separator)
        keep = separator.strip()  # ". " keeps its "." on the left piece
        units: list[str] = []
        for i, part in enumerate(parts):
            piece = part + (keep if keep and i < len(parts) - 1 else "")
            if len(piece.strip()) > size:
                units.extend(recursive_chunks(piece, size, separators[index + 1:]))
            else:
                units.append(piece)
        joiner = "\n\n" if separator == "\n\n" else ("\n" if separator == "\n" else " ")
        return _pack(units, size, joiner)
    return _hard_split(text, size)


STRATEGIES: dict[str, Callable[[str, int], list[str]]] = {
    "fixed": fixed_chunks, "sentence": sentence_chunks, "recursive": recursive_chunks,
}


def _tail(text: str, chars: int) -> str:
    if chars <= 0 or not text:
        return ""
    tail = text[-chars:]
    space = tail.find(" ")
    return tail[space + 1:] if 0 <= space < len(tail) - 1 and len(text) > chars else tail


def chunk_text(text: str, strategy: str, max_chars: int, overlap_chars: int = 0) -> list[str]:
    """The chunks of ``text`` (one chunk when it already fits)."""
    if max_chars < 20:
        raise ValueError(f"cleaning.chunking.max_chars must be at least 20, got {max_chars}")
    if not 0 <= overlap_chars < max_chars // 2:
        raise ValueError(f"cleaning.chunking.overlap_chars must be in [0, max_chars/2), got {overlap_chars}")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown chunking strategy {strategy!r}; use one of {sorted(STRATEGIES)}")
    if len(text.strip()) <= max_chars:
        return [text.strip()] if text.strip() else []
    chunks = STRATEGIES[strategy](text, max_chars - overlap_chars)
    if overlap_chars:
        chunks = [chunks[0]] + [
            f"{_tail(previous, overlap_chars)} {chunk}".strip() for previous, chunk in zip(chunks, chunks[1:])
        ]
    return chunks
