"""Text normalisation: unicode and whitespace, HTML stripping, boilerplate lines."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from typing import Literal

_ZERO_WIDTH = dict.fromkeys(
    map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e\u2061\u2062\u2063\u2064"  # invisible
             "\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"),  # bidi controls
    None,
)
CONTROL_TOKENS = (
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>",
    "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>",
    "<s>", "</s>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>",
)
"""Chat-template control strings neutralised when the base tokenizer is not at hand (the clean
step); ``build_dataset`` neutralises the tokenizer's own special tokens as well."""
_CHAT_MARKER = re.compile(r"<\|[^<>|\s]{1,64}\|>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n?|[\u2028\u2029\x85]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
HTML_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?\s*>")
_ENTITY = re.compile(r"&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});")
_BLOCK_TAGS = ("p", "div", "li", "ul", "ol", "tr", "table", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article")


UnicodeForm = Literal["NFC", "NFD", "NFKC", "NFKD"]


def normalize_text(text: str, form: UnicodeForm = "NFC") -> str:
    """Unicode normal form (NFC: composed accents; ½, ², µ, ×, ≤, ° stay as written); no zero-width,
    bidirectional or control characters; one space between words; lines stripped; at most one
    blank line in a row."""
    text = unicodedata.normalize(form, text).translate(_ZERO_WIDTH)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROL.sub(" ", text.replace("\t", " "))
    text = _SPACES.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def neutralise_token(token: str) -> str:
    """``<|im_end|>`` → ``< |im_end| >``: a space after the first and before the last character.
    Still readable, no invisible characters, and no longer the string a tokenizer maps to a special token."""
    return f"{token[0]} {token[1:-1]} {token[-1]}" if len(token) > 2 else f"{token[0]} {token[1:]}"


def neutralise_control_tokens(text: str, tokens: Sequence[str] = CONTROL_TOKENS) -> tuple[str, int]:
    """``text`` with every chat-template control string (the given ones, and any ``<|…|>``)
    neutralised by :func:`neutralise_token`, and how many there were."""
    count = 0
    for token in sorted({t for t in tokens if t and len(t) > 1}, key=len, reverse=True):
        if token in text:
            count += text.count(token)
            text = text.replace(token, neutralise_token(token))

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        return neutralise_token(match.group(0))

    return _CHAT_MARKER.sub(replace, text), count


def looks_like_html(text: str) -> bool:
    return bool(HTML_TAG.search(text) or _ENTITY.search(text))


def strip_html(text: str) -> str:
    """The visible text of an HTML fragment: no tags, scripts, styles or comments; entities decoded;
    block elements and ``<br>`` become line breaks. Text without markup is returned unchanged."""
    if not looks_like_html(text):
        return text
    if not HTML_TAG.search(text):
        return html.unescape(text)
    from bs4 import BeautifulSoup, Comment

    soup = BeautifulSoup(text, "html.parser")
    for junk in soup(["script", "style", "noscript", "iframe", "head", "template"]):
        junk.decompose()
    for comment in soup.find_all(string=lambda s: isinstance(s, Comment)):
        comment.extract()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for block in soup.find_all(_BLOCK_TAGS):
        block.insert_after("\n")
    return soup.get_text("")


def remove_boilerplate(text: str, patterns: Sequence[re.Pattern[str]]) -> tuple[str, int]:
    """``text`` without the lines that match a boilerplate pattern, and how many lines went."""
    if not patterns:
        return text, 0
    kept, removed = [], 0
    for line in text.split("\n"):
        if line.strip() and any(p.search(line) for p in patterns):
            removed += 1
        else:
            kept.append(line)
    return "\n".join(kept), removed


def compile_patterns(patterns: Sequence[str]) -> list[re.Pattern[str]]:
    compiled = []
    for index, pattern in enumerate(patterns):
        try:
            compiled.append(re.compile(pattern, re.MULTILINE))
        except re.error as error:
            raise ValueError(f"cleaning.boilerplate_patterns[{index}] {pattern!r} is not a valid regex: {error}") from error
    return compiled
