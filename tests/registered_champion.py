"""A champion in an MLflow registry without a training run: a tiny real LoRA adapter,
registered and promoted with the registry's own code (aliases.promote_version)."""

from __future__ import annotations

from pathlib import Path

from drugslm_core.config import BaseModelSettings, DataSettings
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model
from drugslm_core.registry.aliases import promote_version
from drugslm_core.registry.mlflow_registry import ADAPTER_ARTIFACT_PATH
from tests.lora_adapters import save_lora_adapter


def register_champion(tracking_uri: str, model_name: str, workdir: Path, base: BaseModelRef | None = None,
                      promote: bool = True, tags: dict[str, str] | None = None) -> tuple[str, Path, BaseModelRef]:
    """Register a rank-4 LoRA (peft's default init) as a new version of ``model_name`` in the
    registry at ``tracking_uri``, named after its base by hash (plus ``tags``); promote it to
    ``champion``. Returns (version, adapter folder, base)."""
    import mlflow

    base = base or provision_base_model(BaseModelSettings())
    adapter = workdir / f"adapter-{model_name}"
    if not adapter.is_dir():
        save_lora_adapter(base, adapter)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("deployment-test") or client.get_experiment(
        client.create_experiment("deployment-test", artifact_location=(workdir / "mlartifacts").as_uri()))
    run = client.create_run(experiment.experiment_id)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client.log_artifacts(run.info.run_id, str(adapter), ADAPTER_ARTIFACT_PATH)
        client.set_terminated(run.info.run_id)
        if not client.search_registered_models(filter_string=f"name='{model_name}'"):
            client.create_registered_model(model_name)
        data = DataSettings()
        version = client.create_model_version(
            model_name, source=f"runs:/{run.info.run_id}/{ADAPTER_ARTIFACT_PATH}", run_id=run.info.run_id,
            tags={"base_model_name": base.name, "base_model_sha256": base.sha256, "base_model_source": base.source,
                  "system_prompt": data.system_prompt, "domain_tag": data.domain_tag, "training_mode": "qlora",
                  **(tags or {})},
        )
        if promote:
            promote_version(client, model_name, "champion", str(version.version), "test champion")
    finally:
        mlflow.set_tracking_uri(previous)
    return str(version.version), adapter, base
