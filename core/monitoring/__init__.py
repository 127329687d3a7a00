"""Monitoring of deployed models: data and prediction drift, reports, exports."""
