"""trtexec-style logger: `[MM/DD/YYYY-HH:MM:SS] [X] message`, I/V to stdout, W/E to stderr."""
from __future__ import annotations

import sys
import time


def fmt(x) -> str:
    """Format a number like C++ ostream defaults (six significant digits, %g)."""
    if isinstance(x, bool):
        return str(int(x))
    if isinstance(x, int):
        return str(x)
    return f"{float(x):.6g}"


class Logger:
    """Writes severity-prefixed lines; streams are looked up at write time so tests can capture them."""

    def __init__(self, verbose: bool = False, clock=time.localtime):
        self.verbose = verbose
        self._clock = clock

    def _prefix(self, sev: str) -> str:
        """Return the timestamp and severity prefix."""
        return time.strftime("[%m/%d/%Y-%H:%M:%S]", self._clock()) + f" [{sev}] "

    def log(self, sev: str, msg: str = "") -> None:
        """Write msg (each of its lines) with the prefix of severity sev (F/E/W/I/V)."""
        if sev == "V" and not self.verbose:
            return
        out = sys.stdout if sev in "IV" else sys.stderr
        prefix = self._prefix(sev)
        out.write("".join(prefix + line + "\n" for line in str(msg).split("\n")))
        out.flush()

    def info(self, msg: str = "") -> None:
        """Log at INFO."""
        self.log("I", msg)

    def verb(self, msg: str = "") -> None:
        """Log at VERBOSE (only shown with --verbose)."""
        self.log("V", msg)

    def warn(self, msg: str = "") -> None:
        """Log at WARNING."""
        self.log("W", msg)

    def error(self, msg: str = "") -> None:
        """Log at ERROR."""
        self.log("E", msg)

    @staticmethod
    def raw(text: str) -> None:
        """Write text to stdout without a prefix (help, &&&& lines)."""
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        sys.stdout.flush()
