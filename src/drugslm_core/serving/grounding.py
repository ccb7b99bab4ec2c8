"""Retrieval in serving: the served version's index, grounded prompts, citations, abstention.

The index served is the one the version was evaluated with: the training pipeline tags the
registered version with ``retrieval_index_uri`` (the index artifact's folder in the artifact
store; the materializer writes the index under ``<uri>/index``). A local folder is read in place;
a remote one (``s3://…``) is copied to a temporary folder with fsspec first. A version without
the tag is served without retrieval (one log line says so).

Per request, retrieval is on unless the body says ``"retrieval": false``. The last user message
is searched; the answer's prompt carries the numbered excerpts; the response carries
``citations`` (chunk id, drug, section, source), in the JSON body and in the first and last
streamed chunks (an extra field: OpenAI clients ignore unknown fields). When retrieval abstains
the server answers with the fixed abstention message without running the model.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drugslm_core.config import RetrievalSettings
from drugslm_core.data.feedback_records import Citation
from drugslm_core.retrieval.context import abstention_message, assemble_context, grounded_question
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever
from drugslm_core.serving.protocol import ChatMessage

log = logging.getLogger("drugslm.serving")

INDEX_URI_TAG = "retrieval_index_uri"
INDEX_HASH_TAG = "retrieval_index_hash"
INDEX_FOLDER = "index"
"""Where the materializer puts the index inside its artifact folder."""


def load_index(uri: str) -> RetrievalIndex:
    """The index saved under ``uri`` (``<uri>/index``, or ``uri`` itself when it is the index folder)."""
    local = Path(uri)
    if "://" not in uri:
        return RetrievalIndex.load(local / INDEX_FOLDER if (local / INDEX_FOLDER).is_dir() else local)
    import fsspec

    filesystem, path = fsspec.core.url_to_fs(uri)
    source = f"{path.rstrip('/')}/{INDEX_FOLDER}"
    with tempfile.TemporaryDirectory(prefix="drugslm-index-") as scratch:
        filesystem.get(source, scratch, recursive=True)
        folder = Path(scratch) if (Path(scratch) / "manifest.json").is_file() else Path(scratch) / INDEX_FOLDER
        return RetrievalIndex.load(folder)


def version_retriever(tags: dict[str, str], settings: RetrievalSettings) -> Retriever | None:
    """The retriever over the index a version names, or ``None`` (retrieval off, or no index named)."""
    if not settings.enabled:
        return None
    uri = tags.get(INDEX_URI_TAG)
    if not uri:
        log.info("this version names no retrieval index (%s tag): serving without retrieval", INDEX_URI_TAG)
        return None
    try:
        index = load_index(uri)
    except (OSError, ValueError) as error:  # RuntimeError: `drugslm serve` prints it as one line
        raise RuntimeError(f"the retrieval index this version names ({uri}) cannot be loaded: {error}; "
                           "DRUGSLM_RETRIEVAL__ENABLED=false serves it without retrieval") from error
    expected = tags.get(INDEX_HASH_TAG)
    if expected and expected != index.content_hash:
        raise RuntimeError(f"retrieval index at {uri} has content hash {index.content_hash}, the version names {expected}")
    return Retriever(index, settings)


@dataclass
class Grounding:
    messages: list[ChatMessage]
    citations: list[Citation] = field(default_factory=list)
    abstained: bool = False
    abstention: str = ""

    def citations_json(self) -> list[dict[str, str]]:
        return [citation.model_dump() for citation in self.citations]


def ground(retriever: Retriever | None, messages: list[ChatMessage], requested: bool | None, tokenizer: Any,
           settings: RetrievalSettings) -> Grounding:
    """The messages the model sees (last user turn with the excerpts), their citations, or abstention."""
    if retriever is None or requested is False:
        return Grounding(messages)
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role == "user"), None)
    if last is None:
        return Grounding(messages)
    question = messages[last].text
    result = retriever.search(question)
    if result.abstained:
        return Grounding(messages, abstained=True, abstention=abstention_message(retriever.index.drugs))

    def count_tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    context = assemble_context(result.hits, settings.context_tokens, count_tokens)
    grounded = [*messages[:last], ChatMessage(role="user", content=grounded_question(question, context)), *messages[last + 1:]]
    return Grounding(grounded, citations=context.citations)
