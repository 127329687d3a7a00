"""Data: ingest, immutable storage, column kinds, profiling and issue detection."""
