"""Personal data scrubbing: e-mails, phone numbers and document numbers, with counts.

Patterns are conservative (phone numbers need separators, so doses and years are not
touched). Public numbers in ``cleaning.pii.allow`` (poison control, MedWatch) are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PII_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "email": (re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), "[EMAIL]"),
    "br_cnpj": (re.compile(r"(?<!\d)\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}(?!\d)"), "[ID]"),
    "br_cpf": (re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?!\d)"), "[ID]"),
    "us_ssn": (re.compile(r"(?<![\d-])\d{3}-\d{2}-\d{4}(?![\d-])"), "[ID]"),
    "phone": (
        re.compile(
            r"(?<![\w.-])(?:(?:\+\d{1,3}|1)[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,5}[\s.-]\d{4}(?![\w-])"
            r"|(?<![\w-])1-800-[A-Z]{3}-\d{4}(?![\w-])"
        ),
        "[PHONE]",
    ),
}


def scrub_pii(text: str, kinds: Iterable[str], allow: Iterable[str] = ()) -> tuple[str, Counter[str]]:
    """``text`` with each match replaced by a placeholder, and the count of replacements per kind."""
    allowed = set(allow)
    counts: Counter[str] = Counter()
    for kind in kinds:
        pattern, placeholder = PII_PATTERNS[kind]

        def replace(match: re.Match[str], kind: str = kind, placeholder: str = placeholder) -> str:
            if match.group(0) in allowed:
                return match.group(0)
            counts[kind] += 1
            return placeholder

        text = pattern.sub(replace, text)
    return text, counts
