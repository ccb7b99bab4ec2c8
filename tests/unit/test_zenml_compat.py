"""drugslm_ops/zenml_compat.py: a retried attempt can start its MLflow run after a failed one; classes of the
editable install resolve as the package's; version guards."""

from __future__ import annotations

import mlflow
import pytest
from zenml.integrations.mlflow.experiment_trackers.mlflow_experiment_tracker import MLFlowExperimentTracker
from zenml.integrations.mlflow.mlflow_utils import ZENML_TAG_KEY

from drugslm_ops import zenml_compat


@pytest.fixture
def tracking(tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("mlflow-retry")  # earlier tests may leave another store's experiment active
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri("")


def test_a_leftover_zenml_run_blocks_a_new_one_and_is_ended_as_failed(tracking) -> None:
    leftover = mlflow.start_run(tags={ZENML_TAG_KEY: "0.98.0"})  # a failed attempt's, never ended
    with pytest.raises(Exception, match="already active"):
        mlflow.start_run()  # what ZenML's prepare_step_run would do next
    zenml_compat.end_leftover_runs()
    assert mlflow.active_run() is None
    assert mlflow.get_run(leftover.info.run_id).info.status == "FAILED"
    mlflow.start_run()  # the retry's run starts


def test_a_run_that_is_not_zenmls_is_left_alone(tracking) -> None:
    mine = mlflow.start_run()
    zenml_compat.end_leftover_runs()
    assert mlflow.active_run().info.run_id == mine.info.run_id


def test_installed_once_when_steps_are_imported() -> None:
    import steps  # noqa: F401

    assert MLFlowExperimentTracker.prepare_step_run._drugslm_ends_leftover_runs
    wrapped = MLFlowExperimentTracker.prepare_step_run
    zenml_compat.install()
    assert MLFlowExperimentTracker.prepare_step_run is wrapped


def test_a_zenml_outside_the_verified_range_is_not_patched_and_is_named(caplog) -> None:
    import steps  # noqa: F401  (the installed 0.98 is patched already)

    wrapped = MLFlowExperimentTracker.prepare_step_run
    with caplog.at_level("WARNING", logger="drugslm_ops.zenml_compat"):
        applied = zenml_compat.install(version="0.99.0")
    assert applied == {"end_leftover_mlflow_runs": False, "editable_installs_are_packages": False}
    assert "end_leftover_mlflow_runs" in caplog.text and "StepRunner.run" in caplog.text
    assert MLFlowExperimentTracker.prepare_step_run is wrapped
    assert zenml_compat.install() == {"end_leftover_mlflow_runs": True, "editable_installs_are_packages": True}


def test_core_classes_resolve_as_the_installed_package_from_the_repository_root(monkeypatch) -> None:
    """``make run`` runs in the repository, whose source root holds ``src/``: without the
    workaround ``RetrievalIndex`` resolved as ``src.drugslm_core...`` and loaded as a second class
    that its materializer refused."""
    from pathlib import Path

    from zenml.utils import source_utils

    from drugslm_core.retrieval.index import RetrievalIndex

    monkeypatch.setattr(source_utils, "_CUSTOM_SOURCE_ROOT", str(Path(__file__).resolve().parents[2]))
    zenml_compat.install()
    source = source_utils.resolve(RetrievalIndex)
    assert source.module == "drugslm_core.retrieval.index", source
    assert source_utils.load(source) is RetrievalIndex
    from materializers import RetrievalIndexMaterializer  # repository code stays user code

    assert source_utils.resolve(RetrievalIndexMaterializer).module == "materializers.retrieval"
