"""Streamlit pages: each reads the workflow state, calls core, and draws the result."""
