"""forgeexec entry point: parse, print the banner, build or load, run, report; exit 0 (PASSED) or 1 (FAILED)."""
from __future__ import annotations

import logging
import sys
import traceback

from .flags import help_text
from .log import Logger
from .options import UnknownOptions, deprecations, noop_warnings, parse, wants_help
from .shapes import UsageError
from .validate import validate

# api, banner and run import torch and the library: imported after --help is ruled out (help < 1 s)

PROG = "forgeexec"
TEST_NAME = "tensorforge.forgeexec"


class _Bridge(logging.Handler):
    """Routes the library's `tensorforge` logger into forgeexec's log (library INFO shows with --verbose)."""

    def __init__(self, log: Logger):
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        """Forward one record."""
        sev = "E" if record.levelno >= logging.ERROR else "W" if record.levelno >= logging.WARNING else "V"
        self.log.log(sev, record.getMessage())


def _finish(ok: bool, cmdline: str) -> int:
    """Print the &&&& PASSED/FAILED line and return the exit code."""
    Logger.raw(f"&&&& {'PASSED' if ok else 'FAILED'} {TEST_NAME} # {cmdline}")
    return 0 if ok else 1


def _parse(argv: list[str], log: Logger):
    """Parse and validate; on error print the help and the error, return None."""
    try:
        opts = parse(argv)
        warns = validate(opts)
    except UnknownOptions as e:
        Logger.raw(help_text())
        for name, value in e.items:
            log.error(f"Unknown option: {name} {value}")
        return None
    except UsageError as e:
        Logger.raw(help_text())
        log.error(str(e))
        return None
    return opts, warns


def _run_guarded(opts, log: Logger) -> bool:
    """Run, turning library and usage errors into one [E] line (never a traceback)."""
    from . import api
    from .run import run
    try:
        run(opts, log)
        return True
    except (UsageError, *api.error_types()) as e:
        log.error(str(e))
    except KeyboardInterrupt:
        log.error("Interrupted.")
    except MemoryError as e:  # shapes or a file too big for this machine: the user's input, not a bug
        log.error(f"Out of memory: {e or 'the requested shapes do not fit in memory'}")
    except Exception as e:
        from tensorforge.errors import missing_module
        missing = missing_module(e)
        if missing:  # an optional dependency a flag needs
            log.error(missing)
            return False
        if _is_oom(e):
            log.error(f"Out of memory: {str(e).splitlines()[0][:300]}")
            return False
        # an internal bug: still one line, the traceback only with --verbose
        log.error(f"Internal error: {type(e).__name__}: {e}")
        log.verb(traceback.format_exc().rstrip())
    return False


def _is_oom(e: Exception) -> bool:
    """torch's out-of-memory errors (CUDA OOM, the CPU allocator's RuntimeError)."""
    import torch
    return isinstance(e, torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and ("can't allocate memory" in str(e) or "out of memory" in str(e)))


def main(argv: list[str] | None = None) -> int:
    """Run forgeexec with argv (default sys.argv[1:]); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    cmdline = " ".join([PROG, *argv])
    log = Logger()
    Logger.raw(f"&&&& RUNNING {TEST_NAME} # {cmdline}")
    if wants_help(argv):
        Logger.raw(help_text())
        return 0
    parsed = _parse(argv, log)
    if parsed is None:
        return _finish(False, cmdline)
    opts, warns = parsed
    log.verbose = opts.verbose
    for w in deprecations(opts) + noop_warnings(opts) + warns:
        log.warn(w)
    lib_log = logging.getLogger("tensorforge")
    bridge, old = _Bridge(log), (lib_log.level, lib_log.propagate)
    lib_log.addHandler(bridge)
    lib_log.setLevel(logging.DEBUG if opts.verbose else logging.INFO)
    lib_log.propagate = False
    from .banner import options_lines
    try:
        for line in options_lines(opts):
            log.info(line)
        ok = _run_guarded(opts, log)
    finally:
        lib_log.removeHandler(bridge)
        lib_log.setLevel(old[0])
        lib_log.propagate = old[1]
    return _finish(ok, cmdline)


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
