"""``python -m slem_ml`` runs the command line."""

from slem_ml.cli.main import main

main()
