"""Relays and consumers as processes or as tasks of a FastAPI lifespan."""
