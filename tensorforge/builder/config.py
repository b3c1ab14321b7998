"""BuilderConfig and OptimizationProfile: explicit build configuration (stored in the engine)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ShapeError, TensorforgeError


class OptimizationProfile:
    """Per-input (min, opt, max) shapes; tactics are tuned at opt and valid over [min, max]."""

    def __init__(self):
        self.shapes: dict[str, tuple] = {}
        self.values: dict[str, tuple] = {}

    def set_shape(self, name: str, min, opt, max) -> None:  # noqa: A002 - TensorRT's names
        mn, op, mx = (tuple(int(d) for d in s) for s in (min, opt, max))
        if not (len(mn) == len(op) == len(mx)):
            raise ShapeError(f"profile for '{name}': min/opt/max have different ranks")
        if any(not (a <= b <= c) for a, b, c in zip(mn, op, mx)):
            raise ShapeError(f"profile for '{name}': need min <= opt <= max, got {list(mn)}, {list(op)}, {list(mx)}")
        if any(d < 0 for d in mn):
            raise ShapeError(f"profile for '{name}': negative dims")
        self.shapes[name] = (mn, op, mx)

    def get_shape(self, name: str):
        return self.shapes[name]

    def set_shape_input(self, name: str, min, opt, max) -> None:  # noqa: A002 - TensorRT's names
        """(min, opt, max) VALUES of a shape-tensor input (an int input read as a shape); positive."""
        mn, op, mx = (tuple(int(v) for v in _flat(s)) for s in (min, opt, max))
        if not (len(mn) == len(op) == len(mx)):
            raise ShapeError(f"profile for shape input '{name}': min/opt/max have different lengths")
        if any(not (a <= b <= c) for a, b, c in zip(mn, op, mx)):
            raise ShapeError(f"profile for shape input '{name}': need min <= opt <= max, got {list(mn)}, "
                             f"{list(op)}, {list(mx)}")
        if any(v < 1 for v in mn):
            raise ShapeError(f"profile for shape input '{name}': values must be positive, got {list(mn)}")
        self.values[name] = (mn, op, mx)

    def get_shape_input(self, name: str):
        return self.values[name]

    def __repr__(self):
        return f"OptimizationProfile({self.shapes}, values={self.values})"


def _flat(x):
    """Values given as an int, a sequence or an array, flattened."""
    if isinstance(x, int):
        return [x]
    try:
        return list(x.reshape(-1).tolist())  # numpy / torch
    except AttributeError:
        return list(x)


@dataclass
class BuilderConfig:
    """Everything that shapes a build. Stored (minus profiles' objects) in the engine header."""
    fp16: bool = False
    bf16: bool = False
    int8: bool = False
    fp8: bool = False
    tf32: bool = True
    strongly_typed: bool = False
    opt_level: int = 3
    timing_cache: str | None = None
    max_aux_streams: int | None = None
    tactic_sources: list | None = None
    profiling_verbosity: str = "layer_names_only"
    avg_timing: int = 8  # trtexec's --avgTiming default
    precision_constraints: str = "none"
    layer_precisions: dict = field(default_factory=dict)
    layer_output_types: dict = field(default_factory=dict)
    profiles: list = field(default_factory=list)
    device: str | None = None
    verbose: bool = False
    error_on_timing_cache_miss: bool = False

    # "arena": every activation lives in the planned arena (kernels that cannot write in place are
    # followed by a copy). "direct": results a kernel allocates itself are used in place and
    # released after their last use (no copy); the arena holds the rest. See runtime.memory.
    activation_memory: str = "direct"
    fusion: bool = True  # False: cleanup passes only (the unfused baseline)
    refit: bool = False  # store what a refit needs (the ONNX graph without weight data)
    strip_weights: bool = False  # save the engine without weights (refit before inference); implies refit
    # a Q/DQ model's quantized engine against the FP16 engine without its Q/DQ, both timed whole (builder.fp16_form):
    # "auto" on a GPU at opt level >= 1 unless precision constraints are obeyed; "always" (also on the CPU);
    # "never"
    fp16_engine_check: str = "auto"

    def validate(self) -> None:
        if self.activation_memory not in ("arena", "direct"):
            raise TensorforgeError(f"activation_memory must be arena|direct, got {self.activation_memory!r}")
        if not 0 <= int(self.opt_level):
            raise TensorforgeError(f"builder optimization level must be 0..5, got {self.opt_level}")
        if self.precision_constraints not in ("none", "prefer", "obey"):
            raise TensorforgeError(f"precision_constraints must be none|prefer|obey, got {self.precision_constraints!r}")
        if self.fp16_engine_check not in ("auto", "always", "never"):
            raise TensorforgeError(f"fp16_engine_check must be auto|always|never, got {self.fp16_engine_check!r}")
        if self.fp8 and self.int8:
            raise TensorforgeError("fp8 and int8 cannot both be enabled")
        if self.profiling_verbosity not in ("layer_names_only", "detailed", "none"):
            raise TensorforgeError(f"profiling_verbosity must be layer_names_only|detailed|none")

    def to_json(self) -> dict:
        d = asdict(self)
        d["profiles"] = [{k: [list(s) for s in v] for k, v in p.shapes.items()} for p in self.profiles]
        if any(getattr(p, "values", None) for p in self.profiles):
            d["profile_values"] = [{k: [list(s) for s in v] for k, v in getattr(p, "values", {}).items()}
                                   for p in self.profiles]
        return d
