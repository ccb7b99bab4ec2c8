"""Deployments recorded on the MLflow model version they served (tracking URI already set).

Each deployment writes ``deployment.<target>.<field>`` tags (url, at, smoke_test, ...) on the
version, and ``deployment.last`` (``<target> <time>``), so the MLflow UI shows where and
when a version was put in front of users and whether it answered.
"""

from __future__ import annotations

import re

_TAG_SAFE = re.compile(r"[^A-Za-z0-9_.\-/ ]")


def deployment_tags(target: str, fields: dict[str, object]) -> dict[str, str]:
    """``deployment.<target>.<field>`` tags (MLflow tag values: strings, at most 5000 characters)."""
    return {
        f"deployment.{_TAG_SAFE.sub('_', target)}.{_TAG_SAFE.sub('_', name)}": str(value)[:5000]
        for name, value in fields.items()
        if value is not None
    }


def record_deployment(model_name: str, version: str, target: str, deployed_at: str, fields: dict[str, object]) -> dict[str, str]:
    """Tag ``model_name`` v``version`` with the deployment; returns the tags written."""
    import mlflow

    client = mlflow.MlflowClient()
    tags = {**deployment_tags(target, {"at": deployed_at, **fields}), "deployment.last": f"{target} {deployed_at}"}
    for key, value in tags.items():
        client.set_model_version_tag(model_name, str(version), key, value)
    return tags
