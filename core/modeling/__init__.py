"""Modeling: model specs, metrics, cross-validation and evaluation, tuning, training jobs."""
