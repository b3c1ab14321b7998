"""What a server needs to know about an engine: inputs, outputs, batch axis and batch limits."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtypes
from ..errors import TensorforgeError

DEFAULT_MAX_BATCH = 64  # engines without an explicit profile accept any batch; cap what one call takes


class RequestError(TensorforgeError):
    """A bad request (wrong input name, dtype, shape, body): answered 4xx, never reaches the engine."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class IOSpec:
    """One engine input or output as a server sees it."""
    name: str
    dtype: str
    shape: tuple  # -1 for dynamic dims
    min: tuple = ()  # profile limits (inputs only; empty when the engine accepts any shape)
    max: tuple = ()


@dataclass(frozen=True)
class ServeSpec:
    """Engine I/O plus batching limits: dim 0 is the batch when every I/O has a dynamic dim 0."""
    inputs: tuple
    outputs: tuple
    batched: bool
    min_batch: int
    max_batch: int
    opt_batch: int

    def input(self, name: str) -> IOSpec:
        for s in self.inputs:
            if s.name == name:
                return s
        raise RequestError(f"unknown input '{name}'; engine inputs: {', '.join(self.input_names)}")

    @property
    def input_names(self) -> list:
        return [s.name for s in self.inputs]


def from_engine(engine, max_batch: int | None = None) -> ServeSpec:
    """Read I/O and the batch range of profile 0 from an engine (public API only)."""
    implicit = bool(engine.plan.meta.get("implicit_profile")) or engine.num_profiles == 0
    ins = []
    for t in engine.inputs:
        if implicit:
            ins.append(IOSpec(t.name, t.dtype, t.shape))
        else:
            mn, _, mx = engine.get_profile_shape(0, t.name)
            ins.append(IOSpec(t.name, t.dtype, t.shape, tuple(mn), tuple(mx)))
    outs = tuple(IOSpec(t.name, t.dtype, t.shape) for t in engine.outputs)
    batched = all(len(s.shape) > 0 and s.shape[0] == -1 for s in (*ins, *outs))
    lo, opt, hi = 1, 1, 1
    if batched and implicit:
        lo, hi = 1, DEFAULT_MAX_BATCH
        opt = hi
    elif batched:
        lo = max(s.min[0] for s in ins)
        hi = min(s.max[0] for s in ins)
        opt = max(engine.get_profile_shape(0, s.name)[1][0] for s in ins)
    if max_batch is not None and batched:
        if max_batch < lo:
            raise TensorforgeError(f"--max-batch {max_batch} is below the profile's minimum batch {lo}")
        hi = min(hi, max_batch) if not implicit else max_batch
    return ServeSpec(tuple(ins), outs, batched, lo, hi, min(opt, hi))


def np_dtype(s: IOSpec) -> np.dtype:
    """The numpy dtype of an engine tensor (bfloat16/fp8 I/O cannot travel as numpy)."""
    try:
        return dtypes.to_numpy(s.dtype)
    except TensorforgeError:
        raise RequestError(f"'{s.name}' has dtype {s.dtype}, which this server cannot exchange") from None


def engine_view(engine_path: str, max_batch: int | None = None) -> tuple[ServeSpec, str]:
    """(spec, device type) of an engine file, read without putting its weights on a GPU (servers
    read it in the driver; replicas load the engine themselves)."""
    import os

    from ..runtime import Engine
    from ..runtime import format as fmt
    from ..runtime.plan import EnginePlan
    if not os.path.isfile(engine_path):
        raise TensorforgeError(f"{engine_path}: no such engine file")
    header, _, _ = fmt.read(engine_path)
    try:
        view = Engine(EnginePlan.from_json(header["plan"]), {}, device="cpu")  # I/O and profiles only
        device = header["device"]["type"]
    except (KeyError, TypeError) as e:
        raise TensorforgeError(f"{engine_path}: engine header is incomplete ({e})") from None
    return from_engine(view, max_batch), device


def batch_of(spec: ServeSpec, feed: dict) -> int:
    """Validate one request's arrays against the engine; return its batch size (rows)."""
    names = set(spec.input_names)
    unknown = sorted(set(feed) - names)
    if unknown:
        raise RequestError(f"unknown input(s) {', '.join(unknown)}; engine inputs: {', '.join(spec.input_names)}")
    missing = [n for n in spec.input_names if n not in feed]
    if missing:
        raise RequestError(f"missing input(s) {', '.join(missing)}")
    rows = None
    for s in spec.inputs:
        a = feed[s.name]
        if not isinstance(a, np.ndarray):
            raise RequestError(f"input '{s.name}' is not an array")
        if a.dtype != np_dtype(s):
            raise RequestError(f"input '{s.name}' has dtype {a.dtype}, engine expects {s.dtype}")
        _check_shape(s, a.shape, spec.batched)
        if spec.batched:
            if rows is not None and a.shape[0] != rows:
                raise RequestError(f"input '{s.name}' has batch {a.shape[0]}, other inputs have {rows}")
            rows = a.shape[0]
    return rows if spec.batched else 1


def _check_shape(s: IOSpec, shape: tuple, batched: bool) -> None:
    """Rank, static dims and the profile's [min, max] (the batch upper bound is the server's)."""
    fmt = "x".join
    if len(shape) != len(s.shape):
        raise RequestError(f"input '{s.name}': rank {len(shape)} given, engine expects {len(s.shape)} "
                           f"({fmt(str(d) for d in s.shape)})")
    for i, (d, e) in enumerate(zip(shape, s.shape)):
        if e != -1 and d != e:
            raise RequestError(f"input '{s.name}': dim {i} is {d}, engine requires {e}")
    if not s.min:
        return
    for i, (d, a, b) in enumerate(zip(shape, s.min, s.max)):
        lo = 1 if (batched and i == 0) else a  # a batch below the profile minimum is padded
        if not lo <= d <= b:
            raise RequestError(f"input '{s.name}': shape {fmt(str(x) for x in shape)} is outside the "
                               f"profile (min {fmt(str(x) for x in s.min)}, max {fmt(str(x) for x in s.max)})")
