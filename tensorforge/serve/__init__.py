"""Serving engines behind Ray Serve (`deployment`) or Triton Inference Server (`export_triton`).

Ray and PyTriton are optional (`pip install 'tensorforge[serve]'`); importing this package needs
neither, nor torch (the CLI's parsers import it for --help)."""
from __future__ import annotations

_SPEC = ("RequestError", "ServeSpec", "from_engine")


def __getattr__(name):
    if name in _SPEC:  # spec reads engine dtypes (torch): imported on first use
        from . import spec
        return getattr(spec, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def deployment(engine_path: str, **kw):
    """A bound Ray Serve application for an engine file (see ray_deployment.deployment)."""
    from .ray_deployment import deployment as build
    return build(engine_path, **kw)


def export_triton(engine_path: str, repo_dir: str, **kw) -> str:
    """Write a Triton model repository for an engine file; returns the model's folder."""
    from .triton_export import export_triton as export
    return export(engine_path, repo_dir, **kw)


__all__ = ["deployment", "export_triton", "RequestError", "ServeSpec", "from_engine"]
