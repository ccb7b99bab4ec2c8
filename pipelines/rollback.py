"""Move ``champion`` back to the previous registered version.

Run it with ``zenml pipeline run pipelines.rollback.rollback_pipeline`` (settings
from the environment, e.g. ``DRUGSLM_REGISTRY__MODEL_NAME``), or call
``rollback_pipeline(config=..., reason=...)``. The same move without ZenML:
``drugslm model rollback``.
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import load_settings
from steps import rollback_champion


@pipeline(enable_cache=False)
def rollback_pipeline(
    config: dict[str, Any] | None = None, reason: str = "rollback pipeline"
) -> None:
    """``config`` is the settings tree (only ``registry`` is used)."""
    settings = load_settings(config)
    rollback_champion(settings.registry, reason)
