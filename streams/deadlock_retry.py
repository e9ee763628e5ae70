"""Run a PostgreSQL transaction again when the server aborted it to break a deadlock.

The identify stage share-locks the persons it links records to, the routing stage seals persons on a
death and operators merge them, each in its own order; PostgreSQL resolves a cycle by aborting one
transaction. The aborted one rolled back whole, so running it again is safe and is what every caller of
this does, a few times, before it lets the error through.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

T = TypeVar("T")
ATTEMPTS = 5
log = logging.getLogger(__name__)


def retry_on_deadlock(action: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    for attempt in range(attempts):
        try:
            return action()
        except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure) as exc:
            if attempt == attempts - 1:
                raise
            log.warning("transaction aborted (%s); running it again", type(exc).__name__)
            time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))  # let the other transaction finish first
    raise AssertionError("unreachable")
