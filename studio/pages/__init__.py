"""The studio's pages, one module per area (runs, jobs, review, predict); each gives ``routes()``."""
