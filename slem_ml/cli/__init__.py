"""The ``slem`` command line (SPEC §6): thin adapters that parse, call one library function and print.

* :mod:`~slem_ml.cli.main` — the ``slem`` app, ``validate``, ``score``, ``generate``, exit codes;
* :mod:`~slem_ml.cli.models` — ``train`` and ``forecast``;
* :mod:`~slem_ml.cli.serve` — ``serve`` (the manager app);
* :mod:`~slem_ml.cli.users` — ``users add|list|remove``;
* :mod:`~slem_ml.cli.progress` — the progress line.
"""

from slem_ml.cli.main import app, main

__all__ = ["app", "main"]
