"""Fixtures of the CI-feature tests (issue 8): the worker tests' own PostgreSQL database,
real worker processes and the real API, reused from :mod:`tests.worker.conftest`.

Importing a fixture into a conftest registers it here; nothing is redefined.
"""

from tests.worker.conftest import (  # noqa: F401
    e2e_root,
    make_job,
    pg_url,
    service_backend,
    sessions,
    slow_model,
    spawn,
    tiny_model,
)
