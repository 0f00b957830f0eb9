"""slem's manager app: ``python gradio_app.py [options of slem serve]`` is ``slem serve`` (SPEC §6).

The page and its handlers live in :mod:`slem_ml.app.ui` (``build_app(AppConfig(...))`` gives the Gradio
Blocks; ``Handlers`` are the event handlers the tests call directly).
"""

from __future__ import annotations

import sys

from slem_ml.app.ui import Handlers, build_app

__all__ = ["Handlers", "build_app"]

if __name__ == "__main__":
    from slem_ml.cli.main import main

    main(["serve", *sys.argv[1:]])
