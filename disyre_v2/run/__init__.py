"""Command-line entry points only: each parses arguments and calls the Python API."""
