"""``python -m dpconv`` runs the CLI."""

from dpconv.cli import main

main()
