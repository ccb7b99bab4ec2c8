"""Offline text descriptors of questions (no downloads).

Evidently's own OOV/sentiment descriptors fetch nltk data and its semantic ones load MiniLM by
hub id; its out-of-vocabulary check would also flag every drug name. These few are plain
regular expressions over the text, so they run anywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import pandas as pd

DESCRIPTOR_COLUMNS = ["chars", "words", "non_letter_share", "dose_mention", "known_drug"]

# A dose as leaflets write it: a number with a unit ("500 mg", "0.5 ml", "10 units", "2,5 mg").
DOSE_PATTERN = re.compile(
    r"\b\d+(?:[.,]\d+)?\s?(?:mg|mcg|µg|microgram(?:me)?s?|g|ml|mL|l|units?|iu|IU|unidades|%)(?![A-Za-z])",
    re.IGNORECASE,
)
_WORD = re.compile(r"\w+", re.UNICODE)


def known_drug_pattern(drug_names: Iterable[str]) -> re.Pattern[str] | None:
    """One case-insensitive whole-word pattern for the corpus's drug names (longest first)."""
    names = sorted({name.strip().lower() for name in drug_names if name and name.strip()}, key=len, reverse=True)
    if not names:
        return None
    return re.compile(r"\b(?:" + "|".join(re.escape(name) for name in names) + r")\b", re.IGNORECASE)


def describe(texts: list[str], drug_names: Iterable[str]) -> pd.DataFrame:
    """One row per text: characters, words, share of non-letter non-space characters, whether it
    mentions a dose, whether it names a drug known to the corpus (0/1)."""
    pattern = known_drug_pattern(drug_names)
    rows = []
    for text in texts:
        visible = [c for c in text if not c.isspace()]
        rows.append(
            {
                "chars": len(text),
                "words": len(_WORD.findall(text)),
                "non_letter_share": (sum(not c.isalpha() for c in visible) / len(visible)) if visible else 0.0,
                "dose_mention": int(bool(DOSE_PATTERN.search(text))),
                "known_drug": int(bool(pattern and pattern.search(text))),
            }
        )
    return pd.DataFrame(rows, columns=DESCRIPTOR_COLUMNS)
