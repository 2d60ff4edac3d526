"""Experiment tracking: MLflow runs, and the receipts that name them."""
