#!/usr/bin/env bash
# ZenML stack "drugslm-minio": a self-hosted MinIO (any S3-compatible store) + an MLflow server.
# k8s/components/minio deploys MinIO in the cluster; port-forward it or use its ingress.
# Nothing secret is in this file: credentials come from your environment into ZenML secrets.
#
#   export DRUGSLM_S3_ENDPOINT=http://127.0.0.1:9000 DRUGSLM_S3_PATH=s3://drugslm-artifacts/zenml
#   export DRUGSLM_MLFLOW_URI=http://127.0.0.1:5000
#   export MINIO_ACCESS_KEY=... MINIO_SECRET_KEY=...
#   bash stacks/minio.sh
set -euo pipefail
: "${DRUGSLM_S3_ENDPOINT:?}" "${DRUGSLM_S3_PATH:?}" "${DRUGSLM_MLFLOW_URI:?}" "${MINIO_ACCESS_KEY:?}" "${MINIO_SECRET_KEY:?}"
ZENML="${ZENML:-.venv/bin/zenml}"

$ZENML secret create drugslm_minio --aws_access_key_id="$MINIO_ACCESS_KEY" --aws_secret_access_key="$MINIO_SECRET_KEY"
# An MLflow server without auth still needs one method for ZenML's tracker; it ignores these.
$ZENML secret create drugslm_minio_mlflow --username=drugslm --password=no-auth
$ZENML artifact-store register s3_minio --flavor=s3 --path="$DRUGSLM_S3_PATH" \
  --key='{{drugslm_minio.aws_access_key_id}}' --secret='{{drugslm_minio.aws_secret_access_key}}' \
  --client_kwargs="{\"endpoint_url\": \"$DRUGSLM_S3_ENDPOINT\", \"region_name\": \"us-east-1\"}"
$ZENML experiment-tracker register mlflow_minio --flavor=mlflow --tracking_uri="$DRUGSLM_MLFLOW_URI" \
  --tracking_username='{{drugslm_minio_mlflow.username}}' --tracking_password='{{drugslm_minio_mlflow.password}}'
$ZENML stack register drugslm-minio -o default -a s3_minio -e mlflow_minio --set
