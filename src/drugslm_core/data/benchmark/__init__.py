"""The bundled evaluation benchmark (``drug_benchmark_v1.json``).

Questions about drugs of the bundled leaflet corpus, phrased unlike the corpus's
template questions. The file is read only by :mod:`drugslm_core.evaluation.benchmark`;
ingestion never reads this folder, so no benchmark item can reach a training split.
"""
