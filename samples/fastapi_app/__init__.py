"""The demo: a FastAPI application that runs background tasks with EverTask."""
