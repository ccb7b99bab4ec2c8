#!/usr/bin/env bash
# ZenML stack "drugslm-kubeflow": Kubeflow Pipelines 2.x as orchestrator (flavor drugslm_kubeflow,
# src/drugslm_ops/kubeflow.py) with the artifact store, MLflow tracker/registry and container registry of the
# Kubernetes stack (docs/kubernetes.md §8). Run from the repository root with the project installed
# (make setup: the flavor is the installed drugslm_ops.kubeflow). Not run here: there is no cluster; `drugslm kubeflow compile` checks the spec offline.
#
#   export KUBE_CONTEXT="$(kubectl config current-context)"   # a cluster running KFP 2.x
#   export KFP_NAMESPACE=kubeflow
#   bash stacks/kubeflow.sh
#   zenml pipeline run pipelines.training.training_pipeline -c configs/kubeflow-gpu.yaml
set -euo pipefail
: "${KUBE_CONTEXT:?set KUBE_CONTEXT to the kubectl context of the KFP cluster}"
ZENML="${ZENML:-.venv/bin/zenml}"
KFP_NAMESPACE="${KFP_NAMESPACE:-kubeflow}"

$ZENML orchestrator flavor register drugslm_ops.kubeflow.DrugslmKubeflowOrchestratorFlavor
$ZENML orchestrator register kubeflow --flavor=drugslm_kubeflow \
  --kubernetes_context="$KUBE_CONTEXT" --kubeflow_namespace="$KFP_NAMESPACE"
# s3_artifacts, mlflow_k8s, mlflow_registry_k8s, ghcr and local_docker: docs/kubernetes.md §8.
$ZENML stack register drugslm-kubeflow \
  -o kubeflow -a s3_artifacts -e mlflow_k8s -c ghcr -i local_docker --set
