"""User-facing errors: one line, no traceback at the CLI."""


class TensorforgeError(Exception):
    """An error caused by user input (bad file, unsupported op, wrong shape); printed as one line."""


class UnsupportedOpError(TensorforgeError):
    """An ONNX op that tensorforge cannot build."""


class ShapeError(TensorforgeError):
    """A tensor shape that does not fit the model or the optimization profile."""


class EngineFormatError(TensorforgeError):
    """An engine file that cannot be loaded (corrupt, truncated, wrong version or GPU)."""
