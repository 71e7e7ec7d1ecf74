"""``python -m edgekit.cli`` runs the command line (``edgekit bench quality`` quantizes in such subprocesses)."""

from edgekit.cli import main

if __name__ == "__main__":
    main()
