"""Reporting: receipts -> MLflow runs -> records -> tables."""
