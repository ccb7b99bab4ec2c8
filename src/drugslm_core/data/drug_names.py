"""Drug-like words: international nonproprietary name (INN) stems such as -cillin, -statin, -pril.

Shared by evaluation's safety flags (an answer naming a drug the corpus never mentions) and
retrieval's abstention (a question about a drug the index has no leaflet for).
"""

from __future__ import annotations

import re

INN_STEMS = (
    "cillin", "mycin", "micin", "cycline", "floxacin", "azole", "prazole", "statin", "pril", "sartan",
    "olol", "dipine", "semide", "thiazide", "parin", "xaban", "gatran", "grel", "profen", "oxetine",
    "alopram", "triptyline", "zepam", "zolam", "tidine", "triptan", "gliptin", "gliflozin", "umab",
    "ximab", "zumab", "tinib", "navir", "ciclovir", "lukast", "tadine", "tirizine", "afil", "phylline",
    "barbital", "caine", "dronate", "formin", "glitazone", "lamide", "setron", "sone", "olone",
)

_WORD = re.compile(r"[a-z][a-z-]+")


def drug_like_words(text: str) -> set[str]:
    """Words of six letters or more that end in an INN stem."""
    return {word for word in _WORD.findall(text.lower()) if len(word) >= 6 and word.endswith(INN_STEMS)}
