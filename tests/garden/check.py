"""Build one garden model with tensorforge, run it and ONNX Runtime on the same inputs, measure agreement."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .inputs import feed_for

RTOL = 1e-4        # fp32 on the CPU: max |got - ref| / max |ref|, per output
MIN_COSINE = 0.9999


@dataclass
class Result:
    """What one model did: built or not (with the error), agreement per output, time."""
    name: str
    built: bool = False
    ran: bool = False
    error: str = ""
    max_rel: float = float("nan")
    min_cosine: float = float("nan")
    top1: float | None = None       # fraction of rows whose argmax agrees (classifiers)
    seconds: float = 0.0
    per_output: dict = field(default_factory=dict)

    @property
    def agrees(self) -> bool:
        """Within the fp32 tolerance (and full top-1 agreement where measured)."""
        ok = self.ran and self.max_rel <= RTOL and self.min_cosine >= MIN_COSINE
        return ok and (self.top1 is None or self.top1 == 1.0)


def profile_for(entry: dict):
    """An OptimizationProfile pinning every non-scalar input to its manifest shape."""
    import tensorforge as tf
    prof = tf.OptimizationProfile()
    for name, spec in entry["inputs"].items():
        if spec["shape"]:
            s = tuple(spec["shape"])
            prof.set_shape(name, s, s, s)
    return prof


def build_cpu(path: str, entry: dict, opt_level: int = 0):
    """Build the model for the CPU at the given optimization level with the manifest's profile."""
    import tensorforge as tf
    cfg = tf.BuilderConfig(opt_level=opt_level, device="cpu", profiles=[profile_for(entry)])
    return tf.Builder(cfg).build(path)


def run_ort(path: str, feed: dict) -> dict:
    """ONNX Runtime CPU (fp32), all outputs by name."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feed)))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two arrays, flattened, in float64 (1.0 for two zero arrays)."""
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / max(na * nb, 1e-300))


def compare(got: dict, ref: dict, classifier: bool) -> tuple[float, float, float | None, dict]:
    """(max rel err, min cosine, top-1 agreement or None, per-output stats) of got vs ref."""
    max_rel, min_cos, top1, per = 0.0, 1.0, None, {}
    for k, r in ref.items():
        if k not in got:
            raise AssertionError(f"output {k!r} missing from the engine's outputs {sorted(got)}")
        g = got[k]
        g = g.detach().cpu().numpy() if hasattr(g, "detach") else np.asarray(g)
        if tuple(g.shape) != tuple(r.shape):
            raise AssertionError(f"output {k!r}: shape {tuple(g.shape)} != ONNX Runtime's {tuple(r.shape)}")
        if not np.issubdtype(r.dtype, np.floating):
            rel = 0.0 if np.array_equal(g.astype(r.dtype), r) else float("inf")
            cos = 1.0 if rel == 0.0 else 0.0
        else:
            g64, r64 = g.astype(np.float64), r.astype(np.float64)
            if not np.array_equal(np.isnan(g64), np.isnan(r64)):
                rel, cos = float("inf"), 0.0
            else:
                ok = ~np.isnan(r64)
                scale = max(1e-6, float(np.abs(r64[ok]).max(initial=0.0)))
                rel = float(np.abs(g64[ok] - r64[ok]).max(initial=0.0)) / scale
                cos = cosine(g64[ok], r64[ok])
        per[k] = {"max_rel": rel, "cosine": cos}
        max_rel, min_cos = max(max_rel, rel), min(min_cos, cos)
    if classifier:
        k = next(iter(ref))
        r = ref[k].reshape(-1, ref[k].shape[-1])
        g = got[k].detach().cpu().numpy() if hasattr(got[k], "detach") else np.asarray(got[k])
        top1 = float(np.mean(r.argmax(-1) == g.reshape(r.shape).argmax(-1)))
    return max_rel, min_cos, top1, per


def first_line(e: BaseException) -> str:
    """The error as one line: type and message (what the manifest records)."""
    msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {msg}"


def check_model(entry: dict, path: str, seed: int = 0, opt_level: int = 0) -> Result:
    """Build on the CPU, run, compare with ONNX Runtime; errors are recorded, not raised."""
    res = Result(entry["name"])
    feed = feed_for(entry, seed)
    t0 = time.perf_counter()
    try:
        eng = build_cpu(path, entry, opt_level)
        res.built = True
        got = eng.create_execution_context().infer(feed)
        res.ran = True
    except Exception as e:  # noqa: BLE001 - the garden records every failure as data
        res.error = first_line(e)
        res.seconds = time.perf_counter() - t0
        return res
    res.seconds = time.perf_counter() - t0
    ref = run_ort(path, feed)
    try:
        res.max_rel, res.min_cosine, res.top1, res.per_output = compare(got, ref, entry["class"] == "classifier")
    except AssertionError as e:
        res.ran, res.error = False, first_line(e)
    return res
