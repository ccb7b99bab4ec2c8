"""The retrieval index through its materializer and the active (local) ZenML artifact store:
same chunks, same hash, same search results; a dashboard view with counts and sample chunks."""

from __future__ import annotations

from pathlib import Path

from drugslm_core.data.sample_corpus import leaflet_records
from drugslm_core.retrieval.chunks import build_chunks
from drugslm_core.retrieval.index import RetrievalIndex
from drugslm_core.retrieval.search import Retriever
from materializers import RetrievalIndexMaterializer


def test_index_round_trips_through_its_materializer(store_dir: Path) -> None:
    records = [r for r in leaflet_records() if r.focus in {"Metformin", "Warfarin", "Amoxicillin"}]
    index = RetrievalIndex.build(build_chunks(records))
    uri = str(store_dir / "index-artifact")
    Path(uri).mkdir(parents=True)
    materializer = RetrievalIndexMaterializer(uri)
    materializer.save(index)
    [view] = materializer.save_visualizations(index)
    metadata = materializer.extract_metadata(index)
    loaded = RetrievalIndexMaterializer(uri).load(RetrievalIndex)

    assert loaded.content_hash == index.content_hash == metadata["content_hash"]
    assert [c.model_dump() for c in loaded.chunks] == [c.model_dump() for c in index.chunks]
    for question in ("How much metformin should I take?", "Which medicines interact with warfarin?"):
        before, after = Retriever(index).search(question), Retriever(loaded).search(question)
        assert [(h.chunk.chunk_id, round(h.dense, 5)) for h in before.hits] == [(h.chunk.chunk_id, round(h.dense, 5)) for h in after.hits]
    html = Path(view).read_text(encoding="utf-8")
    assert metadata["chunks"] == len(index) == 24 and metadata["drugs"] == 3
    assert "sample-corpus:metformin:dosage:0" in html and index.content_hash in html
