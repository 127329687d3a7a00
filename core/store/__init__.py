"""The store: SQLModel tables, the engine factory and keyword-only CRUD functions."""
