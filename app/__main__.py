"""``python -m app COMMAND``: the command line (``app.cli.main``); the process exits with
the command's status (0 ok, 1 failure, 2 usage)."""

import sys

from app.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
