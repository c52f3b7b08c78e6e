"""The `kdcli` command line (`app.py`); `python -m kdcli.cli` runs it too (`__main__.py`)."""

from kdcli.cli.app import app, main

__all__ = ["app", "main"]
