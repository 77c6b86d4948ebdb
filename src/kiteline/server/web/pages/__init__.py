"""The web UI's pages, one module per area; each builds its routes on `routing.page_router()`."""
