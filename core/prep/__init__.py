"""Preparation: the cleaning recipe and the feature plan, both compiled into the model Pipeline."""
