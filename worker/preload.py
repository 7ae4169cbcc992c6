"""What the worker imports once, in its main process, before the prefork pool forks.

The pool runs one job per child (``worker_max_tasks_per_child = 1``, so a job's memory
goes back to the system when it ends), and a child starts from a fork of the main
process: whatever the main process has imported, every child has for free. Left to the
job, the imports below cost each job about 5 s on a 2-core machine (transformers'
modelling base 2.8 s, datasets 1 s, scikit-learn's metrics 0.6 s, sympy through torch
0.5 s, accelerate 0.3 s), longer than a small prune itself. Importing them starts no
thread pool and no CUDA context, so forking after them is safe.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

#: Modules every prune, fine-tune or evaluation job imports, heaviest first.
JOB_IMPORTS = (
    "transformers.modeling_utils",
    "transformers.models.auto.modeling_auto",
    "datasets",
    "sklearn.metrics",
    "sympy",
    "accelerate",
)


def preload(modules: tuple[str, ...] = JOB_IMPORTS) -> list[str]:
    """Import ``modules``; return those that imported (a missing optional one is skipped, not fatal)."""
    started = time.monotonic()
    from ppruning import prune  # noqa: F401 - the library's public entry point loads torch and transformers

    loaded = ["ppruning"]
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a worker image without an optional package still starts
            log.warning("preload: %s not imported (%s)", name, exc)
            continue
        loaded.append(name)
    log.info("preloaded %d modules for the job processes in %.1f s", len(loaded), time.monotonic() - started)
    return loaded
