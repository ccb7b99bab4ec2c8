"""Traces of served requests and the feedback on them, in MLflow Tracing (serving level: issue 16)."""
