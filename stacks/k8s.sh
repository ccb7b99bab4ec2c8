#!/usr/bin/env bash
# ZenML stack "drugslm-k8s": ZenML's Kubernetes orchestrator in the namespace `drugslm`,
# S3 (or, in dev, the in-cluster MinIO) as artifact store, the in-cluster MLflow as
# tracker (docs/kubernetes.md §8). Run once per ZenML server, from the
# repository root, logged into that server (`zenml login https://zenml.example.com`).
# Not run here: there is no cluster; tests/k8s/test_runbook.py parses every command.
#
#   export KUBE_CONTEXT="$(kubectl config current-context)"
#   bash stacks/k8s.sh                                    # prod overlay: AWS S3
#   DRUGSLM_ENV=dev MINIO_ROOT_USER=... MINIO_ROOT_PASSWORD=... bash stacks/k8s.sh   # dev overlay: MinIO
set -euo pipefail
: "${KUBE_CONTEXT:?set KUBE_CONTEXT to the kubectl context of the cluster}"
ZENML="${ZENML:-.venv/bin/zenml}"
DRUGSLM_ENV="${DRUGSLM_ENV:-prod}"
NAMESPACE="${NAMESPACE:-drugslm}"
S3_PATH="${DRUGSLM_S3_PATH:-s3://drugslm-zenml-artifacts}"
# Resolved by the pods that run the steps, not by this machine. The fully qualified name
# resolves from every namespace: `drugslm` (Kubernetes orchestrator) and the KFP namespace
# (stacks/kubeflow.sh reuses this tracker); `http://mlflow:5000` only from `drugslm`.
MLFLOW_URI="${DRUGSLM_MLFLOW_URI:-http://mlflow.drugslm.svc.cluster.local:5000}"
DEV_S3_ENDPOINT="http://minio.drugslm.svc.cluster.local:9000"
DEV_S3_PATH="s3://zenml-artifacts"

# MLflow tracker: ZenML requires one auth method for a remote tracking URI. The MLflow
# server of k8s/ has no auth (only pods of the namespace reach it) and ignores these.
$ZENML secret create mlflow_auth --username=drugslm --password=unused-without-mlflow-auth

$ZENML orchestrator register k8s_orchestrator --flavor=kubernetes \
  --kubernetes_context="$KUBE_CONTEXT" --kubernetes_namespace="$NAMESPACE" \
  --service_account_name=zenml-orchestrator --step_pod_service_account_name=zenml-step \
  --pass_zenml_token_as_secret=True

if [ "$DRUGSLM_ENV" = dev ]; then
  : "${MINIO_ROOT_USER:?}" "${MINIO_ROOT_PASSWORD:?}"
  $ZENML secret create minio_s3 --key="$MINIO_ROOT_USER" --secret="$MINIO_ROOT_PASSWORD"
  $ZENML artifact-store register s3_artifacts --flavor=s3 --path="$DEV_S3_PATH" \
    --key='{{minio_s3.key}}' --secret='{{minio_s3.secret}}' \
    --client_kwargs="{\"endpoint_url\": \"$DEV_S3_ENDPOINT\", \"region_name\": \"us-east-1\"}"
else
  # Pods: the IAM role of their ServiceAccount (docs §4, §13.1); this client: your AWS credentials.
  $ZENML artifact-store register s3_artifacts --flavor=s3 --path="$S3_PATH"
fi

$ZENML experiment-tracker register mlflow_k8s --flavor=mlflow --tracking_uri="$MLFLOW_URI" \
  --tracking_username='{{mlflow_auth.username}}' --tracking_password='{{mlflow_auth.password}}'
# Required by the Kubernetes orchestrator's stack validation even though the pipelines run
# the prebuilt image as-is (skip_build, configs/k8s-gpu.yaml).
$ZENML container-registry register ghcr --flavor=default --uri=ghcr.io/drugslm
$ZENML image-builder register local_docker --flavor=local
$ZENML stack register drugslm-k8s \
  -o k8s_orchestrator -a s3_artifacts -e mlflow_k8s -c ghcr -i local_docker --set
