"""Triton source generation helpers (pure strings: nothing here imports triton).

Values are computed in a "compute type": float32 for float16/bfloat16/float32, float64 for
float64, the integer type itself for integers, int1 for bool. Operands are loaded through one of
these access kinds (offsets in elements of the flattened output):
  full     contiguous and the shape of the output: offset = linear index
  scalar   one element broadcast everywhere: loaded once
  inner    (row kernels) varies along the reduced trailing dims only: offset = column
  outer    (row kernels) varies along the leading dims only: offset = row
  strided  anything else: the linear index is decomposed over the (collapsed) output dims
"""
from __future__ import annotations

import math

from ... import dtypes
from ...ops.fused.expr import BOOL_OUT, node_dtypes
from .prelude import PRELUDE  # noqa: F401 - the helpers every generated module starts with (re-exported)

TL = {"float16": "tl.float16", "bfloat16": "tl.bfloat16", "float32": "tl.float32", "float64": "tl.float64",
      "int8": "tl.int8", "int16": "tl.int16", "int32": "tl.int32", "int64": "tl.int64", "uint8": "tl.uint8",
      "bool": "tl.int1", "float8e4m3fn": "tl.float8e4nv"}  # float8: stored only, computed in fp32
FLOATS = ("float16", "bfloat16", "float32", "float64")
INTS = ("int8", "int16", "int32", "int64", "uint8")


def ctype(dt: str) -> str:
    """The Triton type values of dtype `dt` are computed in."""
    if dt in ("float16", "bfloat16", "float32", "float8e4m3fn"):
        return "tl.float32"
    return TL[dt]


def literal(v, dt: str) -> str:
    """Python source for a finite constant of dtype dt (non-finite ones are kernel arguments)."""
    if dt == "bool":
        return "1" if v else "0"
    if dt in INTS:
        return str(int(v))
    return repr(float(v))


# tl.math where it has the function (runs in triton's interpreter too), libdevice for the rare rest
_MATH_UNARY = {"Tanh": "_tanh", "Erf": "tl.math.erf", "Sqrt": "tl.sqrt_rn", "Exp": "tl.exp", "Log": "tl.log",
               "Floor": "tl.floor", "Ceil": "tl.ceil", "Round": "_rint", "Sin": "tl.sin", "Cos": "tl.cos",
               "Tan": "libdevice.tan", "Asin": "libdevice.asin", "Acos": "libdevice.acos",
               "Atan": "libdevice.atan", "Sinh": "libdevice.sinh", "Cosh": "libdevice.cosh",
               "Asinh": "libdevice.asinh", "Acosh": "libdevice.acosh", "Atanh": "libdevice.atanh"}
_CMP = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=", "GreaterOrEqual": ">="}
_BITS = {"And": "&", "Or": "|", "Xor": "^"}
_FLOAT_ONLY = set(_MATH_UNARY) | {"Sigmoid", "Reciprocal", "Softplus", "Softsign", "Mish", "LeakyRelu",
                                       "Elu", "Selu", "Celu", "ThresholdedRelu", "HardSigmoid", "HardSwish",
                                       "Gelu", "IsNaN", "IsInf", "Pow"}


def _clamp01(a):
    return f"tl.minimum(tl.maximum({a}, 0.0), 1.0)"


def _unary(op, a, attrs, dt):
    """Source of a one-input op on value `a` of dtype dt."""
    if op in _MATH_UNARY:
        return f"{_MATH_UNARY[op]}({a})"
    alpha = float(attrs.get("alpha", 0.0))
    simple = {
        "Relu": f"tl.where({a} < 0, 0, {a})", "Sigmoid": f"tl.sigmoid({a})", "Abs": f"tl.abs({a})",
        "Neg": f"-{a}", "Reciprocal": f"1.0 / {a}", "Not": f"{a} == 0",
        "Sign": f"tl.where({a} > 0, 1, tl.where({a} < 0, -1, 0)).to({ctype(dt)})",
        "Softplus": f"_softplus({a})", "Softsign": f"{a} / (1.0 + tl.abs({a}))",
        "Mish": f"{a} * _tanh(_softplus({a}))",
        "LeakyRelu": f"tl.where({a} > 0, {a}, {a} * {float(attrs.get('alpha', 0.01))!r})",
        "Elu": f"tl.where({a} > 0, {a}, {float(attrs.get('alpha', 1.0))!r} * _expm1({a}))",
        "ThresholdedRelu": f"tl.where({a} > {float(attrs.get('alpha', 1.0))!r}, {a}, 0.0)",
        "HardSigmoid": _clamp01(f"{float(attrs.get('alpha', 0.2))!r} * {a} + {float(attrs.get('beta', 0.5))!r}"),
        "HardSwish": f"{a} * " + _clamp01(f"{a} / 6.0 + 0.5"),
        "IsNaN": f"{a} != {a}",
    }
    if op in simple:
        return simple[op]
    if op == "Selu":
        al, ga = float(attrs.get("alpha", 1.67326319217681884765625)), float(attrs.get("gamma", 1.05070102214813232421875))
        return f"{ga!r} * tl.where({a} > 0, {a}, {al!r} * (tl.exp({a}) - 1.0))"
    if op == "Celu":
        al = float(attrs.get("alpha", 1.0))
        return f"tl.maximum({a}, 0.0) + tl.minimum(0.0, {al!r} * _expm1({a} / {al!r}))"
    if op == "Gelu":
        if attrs.get("approximate", "none") == "tanh":
            inner = f"{math.sqrt(2 / math.pi)!r} * ({a} + 0.044715 * {a} * {a} * {a})"
            return f"0.5 * {a} * (1.0 + _tanh({inner}))"
        return f"0.5 * {a} * (1.0 + tl.math.erf({a} * {1 / math.sqrt(2)!r}))"
    if op == "IsInf":
        pos, neg = attrs.get("detect_positive", 1), attrs.get("detect_negative", 1)
        inf = f"(({a} == {a}) & ({a} - {a} != {a} - {a}))"
        if pos and neg:
            return inf
        if pos or neg:
            return f"{inf} & ({a} {'>' if pos else '<'} 0)"
        return f"({a} != {a}) & ({a} == {a})"
    if op == "Clip":
        out = a
        if "max" in attrs:
            hi = literal(attrs["max"], dt)
            out = f"tl.where({out} > {hi}, {hi}, {out})"
        if "min" in attrs:
            lo = literal(attrs["min"], dt)
            out = f"tl.where({a} < {lo}, {lo}, {out})"
        return out
    raise NotImplementedError(op)


def _binary(op, a, b, attrs, dt):
    if op in ("Add", "Sub", "Mul"):
        return f"{a} {'+-*'[('Add', 'Sub', 'Mul').index(op)]} {b}"
    if op == "Div":
        return f"{a} / {b}" if dt in FLOATS else f"_tdiv({a}, {b})"
    if op == "Mod":
        if dt in FLOATS:
            return f"libdevice.fmod({a}, {b})"
        return f"{a} - _tdiv({a}, {b}) * {b}" if attrs.get("fmod") else f"_pymod({a}, {b})"
    if op == "Pow":
        return f"libdevice.pow({a}, {b})"  # (constant exponents are specialized in expr_lines)
    if op == "PRelu":
        return f"tl.where({a} >= 0, {a}, {a} * {b})"
    if op in _CMP:
        return f"{a} {_CMP[op]} {b}"
    if op in _BITS:
        return f"{a} {_BITS[op]} {b}"
    raise NotImplementedError(op)


_POW = {1.0: "{a}", 2.0: "{a} * {a}", 3.0: "{a} * {a} * {a}", 0.5: "tl.sqrt_rn({a})", -1.0: "1.0 / {a}",
        -0.5: "1.0 / tl.sqrt_rn({a})"}


def _variadic(op, args, dt):
    nan = ", propagate_nan=tl.PropagateNan.ALL" if dt in FLOATS else ""
    out = args[0]
    for x in args[1:]:
        if op in ("Sum", "Mean"):
            out = f"{out} + {x}"
        else:
            out = f"tl.{'maximum' if op == 'Max' else 'minimum'}({out}, {x}{nan})"
    return f"({out}) / {float(len(args))!r}" if op == "Mean" else out


def e4m3(a: str) -> str:
    """fp32 `a` rounded to float8 e4m3fn's grid (ties to even), saturating at +-448 as ONNX Cast and
    QuantizeLinear do, -0 and NaN kept; the value stays fp32 (exactly representable, so the store's
    conversion is exact). PRELUDE's _e4m3: on the GPU one hardware conversion each way; in Triton's
    CPU interpreter (which rounds half up and drops the carry into the exponent) the grid computed
    from the exponent: step 2^(exponent - 3), at least 2^-9, applied through its exact inverse."""
    return f"_e4m3({a})"


def _cast(a, src, dst):
    if dst == "float8e4m3fn":
        return e4m3(a)
    if dst == "bool":
        return f"{a} != 0"
    if dst in ("float16", "bfloat16") and src != dst:  # round like torch does, then compute in fp32
        return f"{a}.to({TL[dst]}).to(tl.float32)"
    return f"{a}.to({ctype(dst)})"


def supported(expr, in_dtypes) -> bool:
    """True when every node of the expression has a Triton translation for its dtypes."""
    if any(d not in TL for d in in_dtypes):
        return False
    dts = node_dtypes(expr, in_dtypes)
    for n, dt in zip(expr["nodes"], dts):
        if dt not in TL:
            return False
        op = n["op"]
        arg_dt = dts[n["args"][0]] if n.get("args") else dt
        if op in _FLOAT_ONLY and arg_dt not in FLOATS:
            return False
        if op == "Mean" and dt not in FLOATS:
            return False
    return True


def expr_lines(expr, in_vals, in_dtypes, prefix="v", const_args=None):
    """Lines computing every expression node; returns (lines, name of the output, its dtype).

    in_vals[i] is the source name of input i (already in its compute type). Non-finite float
    constants become names from const_args (a list that collects (name, value) pairs)."""
    dts = node_dtypes(expr, in_dtypes)
    names, lines = [], []
    for k, (n, dt) in enumerate(zip(expr["nodes"], dts)):
        name = f"{prefix}{k}"
        op = n["op"]
        if op == "input":
            src = in_vals[n["i"]]
        elif op == "const":
            v = n["v"]
            if dt in FLOATS and not math.isfinite(float(v)):
                cname = f"c_{prefix}{k}"
                const_args.append((cname, float(v)))
                src = cname
            else:
                src = literal(v, dt)
        else:
            args = [names[a] for a in n["args"]]
            adt = dts[n["args"][0]]
            attrs = n.get("attrs", {})
            if op == "Cast":
                src = _cast(args[0], adt, dtypes.from_onnx(attrs["to"]))
            elif op == "Where":
                src = f"tl.where({args[0]}, {args[1]}, {args[2]})"
            elif op in ("Max", "Min", "Sum", "Mean"):
                src = _variadic(op, args, adt)
            elif op == "Pow" and expr["nodes"][n["args"][1]]["op"] == "const" and \
                    float(expr["nodes"][n["args"][1]]["v"]) in _POW:
                src = _POW[float(expr["nodes"][n["args"][1]]["v"])].format(a=args[0])
            elif len(args) == 1:
                src = _unary(op, args[0], attrs, adt)
            else:
                src = _binary(op, args[0], args[1], attrs, adt)
            if op in BOOL_OUT:
                src = f"({src})"
        lines.append(f"{name} = {src}")
        names.append(name)
    return lines, names[expr["out"]], dts[expr["out"]]


def load(ptr: str, kind: str, dt: str, offs: dict, mask: str, other="0") -> str:
    """A load of operand `ptr` with access `kind`, converted to its compute type."""
    if dt == "float8e4m3fn" and other == "0":  # an int `other` does not cast to fp8
        other = "0.0"
    if kind == "scalar":
        src = f"tl.load({ptr})"
    elif kind == "outer":  # one value per row (row kernels): a scalar load
        src = f"tl.load({ptr} + {offs[kind]})"
    else:
        src = f"tl.load({ptr} + {offs[kind]}, mask={mask}, other={other})"
    if dt == "bool":
        return f"{src} != 0"
    return f"{src}.to({ctype(dt)})" if ctype(dt) != TL[dt] else src


def strided_offset(i: int, rank: int) -> str:
    return " + ".join(f"i{d} * s{i}_{d}" for d in range(rank)) or "0"


def decompose(lin: str, rank: int, indent: str) -> list[str]:
    """Lines splitting linear index `lin` into i0..i{rank-1} over dims d0..d{rank-1}."""
    if rank == 0:
        return []
    lines = [f"{indent}r_ = {lin}"]
    for d in range(rank - 1, 0, -1):
        lines += [f"{indent}i{d} = r_ % d{d}", f"{indent}r_ = r_ // d{d}"]
    lines.append(f"{indent}i0 = r_")
    return lines
