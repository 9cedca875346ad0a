"""The command line, ``python -m app COMMAND``."""
