"""`python -m tensorforge.cli.forgeexec`."""
from .main import entry

entry()
