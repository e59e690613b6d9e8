"""MLflow tracking: files are the source of truth, MLflow is a view of them."""
