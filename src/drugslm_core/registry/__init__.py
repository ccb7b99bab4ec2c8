"""MLflow logging, model registration, aliases and lineage tags."""
