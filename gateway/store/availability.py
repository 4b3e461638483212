"""Which exceptions mean "the database is unreachable right now", as opposed to a bug.

While PostgreSQL is down or restarting, a request cannot be stored, so the honest answer is
503 with Retry-After (RFC 9110 §15.6.4, §10.2.3): nothing was written and the caller should try
again. A 500 would tell integrators that their request broke us, and many treat 5xx other than
503 as permanent. The classes below are what asyncpg and the socket layer raise for a server
that is stopped, shutting down, restarting or out of connection slots.
"""

from __future__ import annotations

import asyncpg

DATABASE_DOWN: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset, no route: the server or its host is away
    TimeoutError,  # pool acquire or command_timeout while the server hangs
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, connection closed mid-operation
    asyncpg.OperatorInterventionError,  # 57P01 admin shutdown, 57P02 crash, 57P03 starting
    asyncpg.InsufficientResourcesError,  # 53300 too many connections
    asyncpg.InterfaceError,  # the pool's connection broke under us
    asyncpg.InternalClientError,  # a protocol left mid-operation by a dropped connection
)

# Seconds a client should wait before retrying; a PostgreSQL restart or fail-over takes a few.
RETRY_AFTER_SECONDS = 2


def database_down(exc: BaseException) -> bool:
    return isinstance(exc, DATABASE_DOWN)
