from typing import Annotated

from zenml import log_metadata, step

from drugslm_core.config import RetrievalSettings
from drugslm_core.data.records import RecordBatch
from drugslm_core.retrieval.index import RetrievalIndex, build_index
from materializers import RetrievalIndexMaterializer


@step(output_materializers=RetrievalIndexMaterializer)
def build_retrieval_index(accepted: RecordBatch, settings: RetrievalSettings) -> Annotated[RetrievalIndex, "retrieval_index"]:
    """Chunks of the accepted records → MiniLM + FAISS and BM25: the knowledge base served with this model."""
    index = build_index(accepted.records, settings)
    log_metadata({"retrieval_index_hash": index.content_hash, "retrieval_chunks": len(index)})
    return index
