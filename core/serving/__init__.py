"""The prediction service: one exported model behind a FastAPI app on uvicorn.

Run it with ``python -m core.serving --model DIR``; build the app in-process with
``core.serving.app.create_app``. Nothing here imports streamlit, optuna, evidently or plotly,
so the model image stays slim.
"""
