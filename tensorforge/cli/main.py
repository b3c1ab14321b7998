"""`tensorforge` command: inspect, compare, report, debug, ops, serve, export-triton. Thin layer over the API."""
from __future__ import annotations

import argparse
import logging
import sys

from ..errors import TensorforgeError
from .forgeexec.flags import add_to_parser
from .debug_cmd import add_parser as add_debug_parser
from .refit_cmd import add_parser as add_refit_parser
from .report_cmd import add_parser as add_report_parser
from .quantize_cmd import add_parser as add_quantize_parser

# Flags `compare` shares with forgeexec: forgeexec's names, meaning, defaults and help
COMPARE_FLAGS = ("--shapes", "--loadInputs", "--fp16", "--bf16", "--int8", "--fp8", "--best", "--noTF32",
                 "--stronglyTyped", "--builderOptimizationLevel", "--timingCacheFile", "--avgTiming")


def _add(sub, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose own --help starts with what it does (its line in the command list)."""
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tensorforge", description="ONNX inference optimizer and runtime")
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    i = _add(sub, "inspect", "summarize an ONNX model or a tensorforge engine")
    i.add_argument("path", help="ONNX file, zoo:NAME or engine file")
    i.add_argument("--layers", action="store_true", help="list every layer of an engine (default: on)")
    c = _add(sub, "compare", "run tensorforge and ONNX Runtime (CPU) on the same inputs")
    c.add_argument("model", help="ONNX file or zoo:NAME")
    c.add_argument("--load-inputs", default=None, help=".npz file with one array per input name")
    c.add_argument("--seed", type=int, default=1)
    c.add_argument("--atol", type=float, default=None, help="default 1e-4; a Q/DQ model without --atol/--rtol "
                   "is judged by cosine and top-1 agreement with ONNX Runtime's fake-quant run")
    c.add_argument("--rtol", type=float, default=None, help="default 1e-4")
    c.add_argument("--min-cosine", type=float, default=None, help="a Q/DQ model: the least cosine per output "
                   "(default 0.999; FP8 models with random weights may need less)")
    c.add_argument("--min-top1", type=float, default=None, help="a Q/DQ model: the least top-1 agreement of a "
                   "classifier output (default 0.9)")
    c.add_argument("--device", default=None, help="CUDA device N (as forgeexec), cuda[:N] or cpu "
                   "(default: cuda if available)")
    add_to_parser(c, COMPARE_FLAGS)
    c.add_argument("--opt-level", dest="builderOptimizationLevel", type=int, help=argparse.SUPPRESS)  # old name
    _add(sub, "ops", "list the supported ONNX ops")
    add_report_parser(sub, tuple(f for f in COMPARE_FLAGS if f != "--loadInputs") + ("--cpuThreads",))
    add_debug_parser(sub)
    add_refit_parser(sub)
    from ..serve.cli import add_parsers as add_serve_parsers  # argparse only: Ray is imported on use
    add_serve_parsers(sub)
    add_quantize_parser(sub)
    for sp in (i, c, sub.choices["report"]):
        sp.add_argument("-v", "--verbose", action="store_true")
    for sp in (i, c, sub.choices["report"], sub.choices["refit"]):
        sp.add_argument("--staticPlugins", action="append", default=[], metavar="file",
                        help="plugin module (Python file) to load first; repeatable")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.cmd is None:
        parser().print_help()
        return 0
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="[%(levelname).1s] %(message)s", stream=sys.stderr)
    try:
        if getattr(args, "staticPlugins", None):
            from .. import plugin
            for path in args.staticPlugins:
                plugin.load(path)
        if args.cmd == "inspect":
            from .inspect_cmd import inspect_path
            _print(inspect_path(args.path))
            return 0
        if args.cmd == "compare":
            from .compare_cmd import compare
            return compare(args)
        if args.cmd == "debug":
            from .debug_cmd import debug
            return debug(args)
        if args.cmd == "refit":
            from .refit_cmd import refit
            return refit(args)
        if args.cmd == "quantize":
            from .quantize_cmd import quantize_main
            return quantize_main(args)
        if args.cmd == "report":
            from .report_cmd import report
            return report(args)
        if args.cmd in ("serve", "export-triton"):
            from ..serve.cli import run as run_serve
            return run_serve(args)
        if args.cmd == "ops":
            from .ops_cmd import ops_listing
            _print(ops_listing())
            return 0
    except TensorforgeError as e:
        print(f"tensorforge: error: {e}", file=sys.stderr)
        return 2 if args.cmd != "compare" else 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `tensorforge inspect ... | head`: the reader left; not an error of ours
        _quiet_stdout()
        return 0
    except MemoryError:
        print(f"tensorforge: error: out of memory while running '{args.cmd}'", file=sys.stderr)
        return 2
    except Exception as e:  # a real bug: one line, the traceback only with --verbose
        from ..errors import missing_module
        missing = missing_module(e)
        if missing:  # an optional dependency the command needs
            print(f"tensorforge: error: {missing}", file=sys.stderr)
            return 2 if args.cmd != "compare" else 1
        print(f"tensorforge: internal error: {type(e).__name__}: {e}", file=sys.stderr)
        if getattr(args, "verbose", False):
            import traceback
            traceback.print_exc()
        return 3
    return 0


def _print(text: str) -> None:
    """Print to stdout, flushing here so that a closed pipe is seen inside main's handler."""
    print(text)
    sys.stdout.flush()


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not raise again."""
    import os
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def entry():
    sys.exit(main())


if __name__ == "__main__":
    entry()
