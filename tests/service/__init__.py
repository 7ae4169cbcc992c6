"""Service tests: the REST API on the real PostgreSQL (and Redis where a broker is needed)."""
