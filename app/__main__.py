"""``python -m app COMMAND``: the command line (``app.cli.main``)."""

from app.cli.main import main

if __name__ == "__main__":
    main()
