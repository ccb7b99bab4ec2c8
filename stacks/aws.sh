#!/usr/bin/env bash
# ZenML stack "drugslm-aws": S3 artifact store + MLflow server (Postgres backend, S3 artifacts).
# Nothing secret is in this file: credentials go into ZenML secrets from your environment.
# Not run here (no AWS access from this project's machines); see README "From laptop to cluster".
#
#   export DRUGSLM_S3_PATH=s3://my-bucket/zenml
#   export DRUGSLM_MLFLOW_URI=https://mlflow.example.com   # an `mlflow server` with
#       --backend-store-uri postgresql://... --artifacts-destination s3://my-bucket/mlflow
#   export MLFLOW_TRACKING_USERNAME=... MLFLOW_TRACKING_PASSWORD=...
#   export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=...   # or use a ZenML AWS service connector
#   bash stacks/aws.sh
set -euo pipefail
: "${DRUGSLM_S3_PATH:?set DRUGSLM_S3_PATH=s3://bucket/prefix}"
: "${DRUGSLM_MLFLOW_URI:?set DRUGSLM_MLFLOW_URI to the MLflow server URL}"
: "${MLFLOW_TRACKING_USERNAME:?}" "${MLFLOW_TRACKING_PASSWORD:?}" "${AWS_ACCESS_KEY_ID:?}" "${AWS_SECRET_ACCESS_KEY:?}"
ZENML="${ZENML:-.venv/bin/zenml}"

$ZENML secret create drugslm_aws_s3 \
  --aws_access_key_id="$AWS_ACCESS_KEY_ID" --aws_secret_access_key="$AWS_SECRET_ACCESS_KEY"
$ZENML secret create drugslm_aws_mlflow \
  --username="$MLFLOW_TRACKING_USERNAME" --password="$MLFLOW_TRACKING_PASSWORD"
$ZENML artifact-store register s3_aws --flavor=s3 --path="$DRUGSLM_S3_PATH" \
  --key='{{drugslm_aws_s3.aws_access_key_id}}' --secret='{{drugslm_aws_s3.aws_secret_access_key}}'
$ZENML experiment-tracker register mlflow_aws --flavor=mlflow --tracking_uri="$DRUGSLM_MLFLOW_URI" \
  --tracking_username='{{drugslm_aws_mlflow.username}}' --tracking_password='{{drugslm_aws_mlflow.password}}'
$ZENML stack register drugslm-aws -o default -a s3_aws -e mlflow_aws --set
