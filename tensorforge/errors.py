"""User-facing errors: one line, no traceback at the CLI."""


class TensorforgeError(Exception):
    """An error caused by user input (bad file, unsupported op, wrong shape); printed as one line."""


class UnsupportedOpError(TensorforgeError):
    """An ONNX op that tensorforge cannot build."""


class ShapeError(TensorforgeError):
    """A tensor shape that does not fit the model or the optimization profile."""


class EngineFormatError(TensorforgeError):
    """An engine file that cannot be loaded (corrupt, truncated, wrong version or GPU)."""


# optional modules -> what they are for and how to get them (the extras of pyproject.toml)
OPTIONAL = {"onnxruntime": ("ONNX Runtime (the reference of compare and debug, the quantizer's calibration runs)",
                            "pip install 'tensorforge[quant]'"),
            "PIL": ("Pillow (calibration images)", "pip install 'tensorforge[quant]'"),
            "matplotlib": ("matplotlib (the report's plots)", "pip install 'tensorforge[report]'"),
            "pynvml": ("nvidia-ml-py (GPU monitoring)", "pip install 'tensorforge[monitor]'"),
            "ray": ("Ray Serve", "pip install 'tensorforge[serve]'")}


def missing_module(e: BaseException) -> str | None:
    """A one-line 'needs X: pip install ...' for an ImportError of an optional module, else None."""
    if not isinstance(e, ImportError):
        return None
    name = (getattr(e, "name", None) or "").split(".")[0]
    if name not in OPTIONAL:
        return None
    what, how = OPTIONAL[name]
    return f"this needs {what}, which is not installed: {how}"
