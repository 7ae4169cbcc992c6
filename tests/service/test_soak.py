"""A short form of ``bench/soak.py`` in the suite: 200 live event streams plus polling clients for a
few seconds against the real service (uvicorn, PostgreSQL, Redis, a worker running jobs).

The latency targets belong to the benchmark (a shared test machine's load decides them); here the
run must drop no stream, answer no 5xx and time out on no pooled connection, and liveness must
stay far from the pool's 30 s timeout.
"""

from __future__ import annotations

import os

from bench import soak  # bench/ is a folder of scripts; its modules import as a namespace package


def test_200_streams_and_pollers_drop_nothing_and_get_no_5xx_or_pool_timeout():
    result = soak.run_soak(
        "postgres",
        streams=200,
        pollers=10,
        seconds=15,  # opening 200 streams takes seconds on a busy 2-core machine; the rest is steady state
        pg_admin_url=os.environ["PPRUNING_TEST_PG_ADMIN_URL"],
        redis_host=os.environ["PPRUNING_TEST_REDIS_HOST"],
    )
    print(soak.report(result))
    assert result.streams_opened >= 200 and result.steady_s > 0, soak.report(result)
    failures = (result.streams_dropped, result.errors_5xx, result.unanswered, result.pool_timeouts)
    assert failures == (0, 0, 0, 0), soak.report(result)
    assert result.healthz_ms and result.get_ms
    assert soak.percentile(result.healthz_ms, 99) < 3000 and soak.percentile(result.get_ms, 99) < 5000
