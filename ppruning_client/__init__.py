"""The CI client of the P-pruning service: submit jobs, follow them, download their artifacts.

It speaks the public HTTP API only and depends on httpx and the standard library, so a CI
runner installs it without torch (``pip install ./ppruning_client`` gives ``ppruning-client``). The
main ``ppruning`` command offers the same subcommands through the same code.
"""

__all__ = ["Client", "ClientError", "ServiceUnreachable", "StreamUnavailable", "WaitTimeout", "describe"]

from ppruning_client.http_client import (
    Client,
    ClientError,
    ServiceUnreachable,
    StreamUnavailable,
    WaitTimeout,
    describe,
)
