"""Serve a registered version: resolve @champion (or ``deployment.version``) → deploy → record.

Run it with ``zenml pipeline run pipelines.deployment.deployment_pipeline -c configs/local.yaml``
(``make deploy``). ``deployment.target`` picks where: ``local`` (re)starts ``drugslm serve`` as a
managed process and smoke-tests it with the ``openai`` client; ``production`` copies the adapter to
the artifact store and renders the vLLM manifests for the version (``build/deploy/v<N>/``).
"""

from typing import Any

from zenml import pipeline

from drugslm_core.config import load_settings
from steps import base_model
from steps.deployment import check_deployment_base, deploy, record_deployment, resolve_deployment


@pipeline(enable_cache=False)
def deployment_pipeline(config: dict[str, Any] | str | None = None, zenml_model: str | None = "drugslm") -> None:
    """``config`` is the settings tree (``parameters.config`` in the run config); ``zenml_model``
    is the ZenML model whose version that registered the deployed one gets the record."""
    settings = load_settings(config)
    # Locally the server loads the base from this machine's cache: check the hash against it.
    # The GPU pods load the base the adapter names (by hash) from their cache volume instead.
    plan = resolve_deployment(settings.deployment, settings.registry)
    if settings.deployment.target == "local":
        plan = check_deployment_base(plan, base_model(settings.base_model))
    record, _ = deploy(plan, settings)
    record_deployment(record, zenml_model)
