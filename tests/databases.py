"""Where the database tests run: a SQLite file, and the local PostgreSQL server (fixtures in conftest.py)."""

from __future__ import annotations

import pytest

#: The local server: 127.0.0.1:5432, user postgres, trust auth.
PG_HOST = "postgres@127.0.0.1:5432"
#: ``params`` for a fixture that runs each test on both backends.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
