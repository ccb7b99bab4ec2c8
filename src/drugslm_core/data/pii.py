"""Personal data scrubbing: e-mails, phone numbers and national id numbers, with counts.

Patterns, not a model: Presidio's recognisers need a spaCy model downloaded at run time, which
this project never does. Patterns are written so that doses and numbers with units are never
touched ("500 mg", "1-2 tablets", "100 × 10⁹/L"):

- **br_cpf**: ``123.456.789-09`` always; ``123456789-09`` and ``12345678909`` only when the two
  check digits are right (so a random 11-digit number is left alone);
- **br_cnpj**: ``12.345.678/0001-95``;
- **us_ssn**: ``123-45-6789`` and ``123 45 6789`` (valid area/group/serial); ``123456789``
  only right after an SSN label (``SSN``, ``social security number``, ``SS#``);
- **phone**: national forms with separators (``(11) 98765-4321``, ``415-555-2671``,
  ``+55 11 98765 4321``), E.164 (``+5511987654321``), and bare 10–13 digit numbers right
  after a phone label (``tel``, ``phone``, ``telefone``, ``celular``, ``WhatsApp``, ``call``);
- **email**.

Public numbers in ``cleaning.pii.allow`` (poison control, MedWatch) are kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable

PLACEHOLDERS = {"email": "EMAIL", "phone": "PHONE", "us_ssn": "ID", "br_cpf": "ID", "br_cnpj": "ID"}
ORDER = ("email", "br_cnpj", "br_cpf", "us_ssn", "phone")
"""Applied in this order whatever the configured order (a CPF is not a phone number)."""


def cpf_is_valid(digits: str) -> bool:
    """The two CPF check digits (mod 11) are right, and the number is not one digit repeated."""
    if len(digits) != 11 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    for size in (9, 10):
        total = sum(int(d) * weight for d, weight in zip(digits[:size], range(size + 1, 1, -1)))
        if (total * 10) % 11 % 10 != int(digits[size]):
            return False
    return True


def ssn_is_valid(area: str, group: str, serial: str) -> bool:
    """SSA rules: no 000, 666 or 9xx area, no 00 group, no 0000 serial."""
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


_NOT_NUMBER_BEFORE = r"(?<![\w.,/+-])"
_NOT_NUMBER_AFTER = r"(?![\w/-]|[.,]\d)"

# (pattern, group holding the personal data (0 = whole match), validator of that group)
_Rule = tuple[re.Pattern[str], int, Callable[[re.Match[str]], bool]]
_ALWAYS: Callable[[re.Match[str]], bool] = lambda m: True  # noqa: E731

PII_RULES: dict[str, list[_Rule]] = {
    "email": [
        (re.compile(r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"), 0, _ALWAYS),
    ],
    "br_cnpj": [
        (re.compile(r"(?<!\d)\d{2}\.\d{3}\.\d{3}/\d{4}-\d{2}(?!\d)"), 0, _ALWAYS),
    ],
    "br_cpf": [
        (re.compile(r"(?<![\d.])\d{3}\.\d{3}\.\d{3}-\d{2}(?!\d)"), 0, _ALWAYS),
        (
            re.compile(_NOT_NUMBER_BEFORE + r"\d{9}-?\d{2}" + _NOT_NUMBER_AFTER),
            0, lambda m: cpf_is_valid(m.group(0).replace("-", "")),
        ),
    ],
    "us_ssn": [
        (
            re.compile(_NOT_NUMBER_BEFORE + r"(\d{3})([- ])(\d{2})\2(\d{4})" + _NOT_NUMBER_AFTER),
            0, lambda m: ssn_is_valid(m.group(1), m.group(3), m.group(4)),
        ),
        (
            re.compile(
                r"(?i)\b(?:ssn|social[ -]security(?:[ -](?:number|no\.?|n[ºo°]))?|ss#|ss no\.?)"
                r"(?:[\s:#.=-]{0,4}(?:is|was|number|no)\b)?[\s:#.=-]{0,4}(\d{9})(?!\d)"
            ),
            1, _ALWAYS,
        ),
    ],
    "phone": [
        (
            re.compile(
                r"(?<![\w.-])(?:(?:\+\d{1,3}|1)[\s.-]?)?(?:\(\d{2,4}\)\s?|\d{2,4}[\s.-])\d{3,5}[\s.-]\d{4}(?![\w-])"
                r"|(?<![\w-])1-800-[A-Z]{3}-\d{4}(?![\w-])"
            ),
            0, _ALWAYS,
        ),
        (re.compile(r"(?<![\w+])\+[1-9]\d{7,14}(?!\d)"), 0, _ALWAYS),
        (
            re.compile(
                r"(?i)\b(?:tel|telephone|telefone|phone|fone|cel|celular|mobile|whats ?app|call|ligue|ligar)\b"
                r"[\s.:#=-]{0,4}(\+?\d{10,13})(?!\d)"
            ),
            1, _ALWAYS,
        ),
    ],
}
PII_PATTERNS = {kind: [rule[0] for rule in rules] for kind, rules in PII_RULES.items()}


def scrub_pii(
    text: str, kinds: Iterable[str], allow: Iterable[str] = (), numbering: dict[str, str] | None = None
) -> tuple[str, Counter[str]]:
    """``text`` with each match replaced by a placeholder (``[EMAIL]``, ``[PHONE]``, ``[ID]``), and the
    count of replacements per kind.

    With ``numbering`` (a dict shared across calls) each distinct value gets its own numbered
    placeholder (``[EMAIL#1]``), so that fields that must stay distinct (ids, file names) do."""
    allowed = set(allow)
    wanted = set(kinds)
    counts: Counter[str] = Counter()
    for kind in ORDER:
        if kind not in wanted:
            continue
        for pattern, group, valid in PII_RULES[kind]:

            def replace(match: re.Match[str], kind: str = kind, group: int = group, valid=valid) -> str:
                value = match.group(group)
                if value in allowed or match.group(0) in allowed or not valid(match):
                    return match.group(0)
                counts[kind] += 1
                label = PLACEHOLDERS[kind]
                if numbering is None:
                    placeholder = f"[{label}]"
                else:
                    placeholder = numbering.setdefault(value, f"[{label}#{len(numbering) + 1}]")
                start, end = match.span(group)
                whole = match.group(0)
                return whole[: start - match.start()] + placeholder + whole[end - match.start():]

            text = pattern.sub(replace, text)
    return text, counts
