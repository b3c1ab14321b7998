"""Weight tape: the torch calls a build makes on weights, recorded so that a refit replays them on new
arrays (BN folding, GEMM merges, casts, layouts: whatever the passes did, by the same torch calls in
the same order, so the results are bitwise a fresh build's). A call whose Python result depends on a
weight's values (`.item()`, `bool(t)`, `.tolist()`, `.numpy()`) decided something in the build: it
becomes a guard, re-checked on replay; a refit whose weights would change a decision is refused."""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import weakref

import torch
from torch.overrides import TorchFunctionMode

from .tape_codec import GuardError, TapeError, encode_value, func_name, pack_tensor, run, unpack_tensor

# results that depend on a tensor's metadata only (the tape's shapes never change): no guard needed
_META = {"shape", "size", "dim", "ndim", "ndimension", "dtype", "device", "numel", "nelement", "stride",
         "is_contiguous", "layout", "requires_grad", "is_floating_point", "is_complex", "element_size",
         "data_ptr", "storage_offset", "untyped_storage", "is_cuda", "is_sparse", "names", "grad_fn", "grad",
         "is_leaf", "itemsize", "nbytes", "__len__", "__hash__", "__repr__", "__format__", "__str__",
         "is_quantized", "is_meta", "is_nested", "_is_view", "output_nr", "_version", "__reduce_ex__"}
_LOCAL = threading.local()  # torch's function modes are per thread: so is the recording tape


def _active() -> list:
    if not hasattr(_LOCAL, "stack"):
        _LOCAL.stack = []
    return _LOCAL.stack


def active():
    """The recording tape of this build, or None."""
    stack = _active()
    return stack[-1] if stack else None


def mark_source(name: str, t: torch.Tensor) -> None:
    """The frontend's tensor of ONNX initializer `name` (a refit source when the tape wants it)."""
    rec = active()
    if rec is not None:
        rec.source(name, t)


def _where() -> str:
    """file:line (function) of the innermost caller outside torch and this module (names a guard)."""
    f = sys._getframe(2)
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    skip = (os.path.dirname(torch.__file__), os.path.dirname(os.path.abspath(__file__)) + os.sep + "tape")
    while f is not None and f.f_code.co_filename.startswith(skip):
        f = f.f_back
    if f is None:
        return "?"
    path = f.f_code.co_filename
    shown = os.path.relpath(path, here) if path.startswith(here) else os.path.basename(path)
    return f"{shown}:{f.f_lineno} ({f.f_code.co_name})"


class Recorder(TorchFunctionMode):
    """Records every torch call that reads a tracked tensor (one derived from a source)."""

    def __init__(self, sources: set):
        super().__init__()
        self.wanted = set(sources)
        self.nodes: dict[int, tuple] = {}  # id(tensor) -> (weakref, node)
        self.n = 0
        self.ops: list = []  # [func name, encoded args, encoded kwargs, out node(s), guard or None, where]
        self.sources: dict[str, int] = {}
        self.literals: dict[int, torch.Tensor] = {}
        self.mutated: set = set()  # source nodes an in-place call wrote into
        self.writes: set = set()  # indices of in-place calls (kept: a view may see what they wrote)
        self.storages: dict = {}  # storage address of a source -> its node
        self.error: str | None = None

    # ---- nodes ---------------------------------------------------------------------------------
    def _new(self, t) -> int:
        self.n += 1
        self.nodes[id(t)] = (weakref.ref(t), self.n)
        return self.n

    def node(self, t):
        e = self.nodes.get(id(t))
        return e[1] if e is not None and e[0]() is t else None

    def source(self, name: str, t: torch.Tensor) -> None:
        if name in self.wanted:
            ptr = t.untyped_storage().data_ptr()  # read before t is tracked (not a recorded call)
            self.sources[name] = self._new(t)
            self.storages[ptr] = self.sources[name]

    def _wrote(self, t: torch.Tensor) -> None:
        """An in-place call wrote into t: a source whose memory it shares must be copied on replay."""
        self.writes.add(len(self.ops))
        src = self.storages.get(t.untyped_storage().data_ptr())
        if src is not None:
            self.mutated.add(src)

    def literal(self, t: torch.Tensor) -> int:
        """A node for an untracked tensor read by a recorded call: a snapshot of its value now."""
        k = self._new(t)
        self.literals[k] = t.detach().clone()
        return k

    # ---- recording -----------------------------------------------------------------------------
    def _tracked(self, x) -> bool:
        if isinstance(x, torch.Tensor):
            return self.node(x) is not None
        if isinstance(x, (list, tuple)):
            return any(self._tracked(y) for y in x)
        return False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.error or not (self._tracked(args) or self._tracked(tuple(kwargs.values()))):
            return out
        try:
            self._record(func, args, kwargs, out)
        except TapeError as e:  # the build goes on; the engine falls back to a full re-run refit
            self.error = str(e)
        return out

    def _record(self, func, args, kwargs, out) -> None:
        name = func_name(func)
        short = name.rsplit(".", 2)[-2] if name.endswith(".__get__") else name.rsplit(".", 1)[-1]
        if short in _META:
            return
        ins = [encode_value(a, self) for a in args]
        kw = {k: encode_value(v, self) for k, v in kwargs.items()}
        where = None
        if isinstance(out, torch.Tensor):
            same = any(a is out for a in args if isinstance(a, torch.Tensor))
            inplace = (short.endswith("_") and not short.endswith("__")) or short.startswith("__i") \
                or kwargs.get("out") is out
            if same and not inplace:  # t.contiguous(), t.to(t.dtype): t itself, no new value
                return
            if inplace:
                self._wrote(out)
            res, guard = self._new(out), None
        elif isinstance(out, (tuple, list)) and out and all(isinstance(o, torch.Tensor) for o in out):
            res, guard = [self._new(o) for o in out], None
        elif out is None:  # __setitem__, copy-into: the first tensor argument is written
            first = next((a for a in args if isinstance(a, torch.Tensor)), None)
            if first is not None:
                self._wrote(first)
            res, guard = None, None
        else:
            res, guard, where = None, _guard_value(out), _where()
        self.ops.append([name, ins, kw, res, guard, where])


def _guard_value(out):
    """A build-time Python result in a comparable, storable form."""
    if hasattr(out, "tolist"):  # numpy arrays / scalars
        out = out.tolist()
    return encode_value(out, None)


@contextlib.contextmanager
def recording(sources: set):
    """Record the torch calls on the given initializers' tensors (and all derived from them)."""
    rec = Recorder(sources)
    _active().append(rec)
    try:
        with rec:
            yield rec
    finally:
        _active().pop()


def _nodes_in(x, acc: set) -> set:
    """Node ids named in an encoded value."""
    if isinstance(x, list):
        for y in x:
            _nodes_in(y, acc)
    elif isinstance(x, dict):
        if "n" in x:
            acc.add(x["n"])
        else:
            for y in x.values():
                _nodes_in(y, acc)
    return acc


def finish(rec: Recorder, weights: dict, stripped: bool) -> dict:
    """The stored tape: the calls that reach an engine weight or a guard (or write into a tensor),
    the literals they read; engine weights no source reaches are kept (as literals) only when
    the engine is saved without weights."""
    outputs = {}
    for name, w in weights.items():
        n = rec.node(w)
        if n is None and stripped:
            n = rec.literal(w)
        if n is not None:
            outputs[name] = n
    live = set(outputs.values())
    kept = []
    for i in range(len(rec.ops) - 1, -1, -1):
        op = rec.ops[i]
        _, ins, kw, res, guard, where = op
        made = set(res) if isinstance(res, list) else {res} if res is not None else set()
        if made & live or where is not None or i in rec.writes:
            kept.append(op)
            _nodes_in([ins, kw], live)
    kept.reverse()
    lits = {str(k): pack_tensor(t) for k, t in rec.literals.items() if k in live}
    return {"ops": kept, "outputs": outputs, "sources": {k: n for k, n in rec.sources.items() if n in live},
            "literals": lits, "mutated": sorted(rec.mutated), "writes": bool(rec.writes)}


def writes_into(tape: dict, targets: dict) -> dict:
    """{node: target} for engine weights a tape_ops call or a cat computes last, which can write
    straight into the engine's tensor: only for a tape without guards (a refused refit must leave
    the engine as it was); the replay checks the shape first (tape_codec.run)."""
    if any(op[5] is not None for op in tape["ops"]):
        return {}
    made = {op[3]: op[0] for op in tape["ops"] if isinstance(op[3], int)}
    out = {}
    for name, n in tape["outputs"].items():
        t = targets.get(name)
        fn = made.get(n, "")
        if t is not None and (fn.startswith("tensorforge.ir.tape_ops:") or fn == "torch:cat") \
                and t.device.type == "cpu" and t.is_contiguous():
            out[n] = t
    return out


_LITERALS: list = []  # [(tape, {node: tensor})]: the last few tapes' decoded literals


def _literals(tape: dict) -> dict:
    """{node: tensor} of the tape's literals: decoded once per tape unless a call writes in place
    (then fresh memory on every replay)."""
    if tape.get("writes", True):
        return {int(k): unpack_tensor(p) for k, p in tape["literals"].items()}
    for t, lits in _LITERALS:
        if t is tape:
            return lits
    lits = {int(k): unpack_tensor(p) for k, p in tape["literals"].items()}
    _LITERALS.insert(0, (tape, lits))
    del _LITERALS[4:]
    return lits


def replay(tape: dict, sources: dict, into: dict | None = None) -> dict:
    """{engine weight: tensor} from {initializer name: torch tensor} by the recorded calls; into
    {engine weight: tensor}: results written straight into those tensors where the call allows."""
    mutated = set(tape["mutated"])
    env = {}
    for name, n in tape["sources"].items():
        t = sources[name]
        env[n] = t.clone() if n in mutated else t
    env.update(_literals(tape))
    return run(tape, env, writes_into(tape, into or {}))


def tracked(t) -> bool:
    """True when the recording tape derives t from a refittable weight."""
    rec = active()
    n = rec.node(t) if rec is not None and isinstance(t, torch.Tensor) else None
    return n is not None and n not in rec.literals
