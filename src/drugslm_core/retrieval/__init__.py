"""Retrieval over the accepted leaflets: chunks with stable ids, a MiniLM + FAISS dense index and a
BM25 index, hybrid search (reciprocal-rank fusion, drug-name aware, MMR), a context assembler with
citations, and abstention when nothing in the corpus matches.

Sits after ``quality`` and before ``modeling`` in the one-way order: imports ``config`` and ``data`` only.
"""
