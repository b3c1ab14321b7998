"""A bounded loopback load generator (aiohttp, which Ray Serve depends on) and its report.

Used by tests/serve and bench/serve.py against `tensorforge serve` (NumPy bodies) and Triton (KServe
v2 binary protocol). Every request is sent exactly once; nothing retries."""
from __future__ import annotations

import asyncio
import io
import json
import time
from dataclasses import dataclass

import numpy as np

from . import codec

TRITON_TYPES = {"float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32", "int8": "INT8",
                "uint8": "UINT8", "bool": "BOOL", "float64": "FP64"}


@dataclass
class Result:
    """One request's outcome as the client saw it."""
    status: int
    body: bytes
    headers: dict
    ms: float


def npy_body(feed: dict) -> bytes:
    """One input -> a .npy body; several -> .npz."""
    buf = io.BytesIO()
    if len(feed) == 1:
        np.save(buf, next(iter(feed.values())))
    else:
        np.savez(buf, **feed)
    return buf.getvalue()


def triton_body(feed: dict, outputs: list) -> tuple[bytes, dict]:
    """KServe v2 binary-data request (JSON header + raw tensors) and its headers."""
    ins, raw = [], []
    for name, a in feed.items():
        a = np.ascontiguousarray(a)
        ins.append({"name": name, "shape": list(a.shape), "datatype": TRITON_TYPES[str(a.dtype)],
                    "parameters": {"binary_data_size": a.nbytes}})
        raw.append(a.tobytes())
    head = json.dumps({"inputs": ins, "outputs": [{"name": n, "parameters": {"binary_data": True}}
                                                  for n in outputs]}).encode()
    return head + b"".join(raw), {"Inference-Header-Content-Length": str(len(head)),
                                  "Content-Type": "application/octet-stream"}


def shm_layout(feeds: list) -> tuple[int, list]:
    """(total bytes, per feed {input: (offset, nbytes)}) of the feeds' inputs laid end to end, 64-byte
    aligned: one system shared-memory region that Triton reads requests' inputs from."""
    off, where = 0, []
    for feed in feeds:
        w = {}
        for name, a in feed.items():
            w[name] = (off, a.nbytes)
            off += -(-a.nbytes // 64) * 64
        where.append(w)
    return off, where


def triton_shm_body(feed: dict, outputs: list, region: str, where: dict) -> tuple[bytes, dict]:
    """A KServe v2 request whose inputs lie in Triton system shared-memory region `region` (registered
    by the client; `where`: shm_layout's entry for this feed): a JSON body of a few hundred bytes, with
    the outputs coming back as binary data. Triton's own high-throughput mode for clients on the host
    (perf_analyzer --shared-memory=system): the server reads the payload in place instead of parsing it
    out of the HTTP body."""
    ins = [{"name": name, "shape": list(a.shape), "datatype": TRITON_TYPES[str(a.dtype)],
            "parameters": {"shared_memory_region": region, "shared_memory_offset": where[name][0],
                           "shared_memory_byte_size": where[name][1]}} for name, a in feed.items()]
    head = json.dumps({"inputs": ins, "outputs": [{"name": n, "parameters": {"binary_data": True}}
                                                  for n in outputs]}).encode()
    return head, {"Content-Type": "application/json"}


class TritonShm:
    """The feeds' inputs in a new POSIX shared-memory segment, registered with the Triton server at `base`
    (http://host:port) as system shared-memory region `region`; `bodies`: each feed's request (triton_shm_body).
    `headers`: what Triton's shared-memory API needs (PyTriton guards it with an access token). A context
    manager: on exit the region is unregistered and the segment removed."""

    def __init__(self, base: str, feeds: list, outputs: list, headers: dict | None = None,
                 region: str = "tf_inputs"):
        from multiprocessing import shared_memory
        self.base, self.region, self.headers = base, region, dict(headers or {})
        size, where = shm_layout(feeds)
        self.shm = shared_memory.SharedMemory(create=True, size=max(size, 1))
        try:
            for feed, w in zip(feeds, where):
                for name, a in feed.items():
                    off, n = w[name]
                    self.shm.buf[off:off + n] = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
            self._post("register", {"key": "/" + self.shm.name, "offset": 0, "byte_size": size})
        except BaseException:
            self.shm.close()
            self.shm.unlink()
            raise
        self.bodies = [triton_shm_body(f, outputs, region, w) for f, w in zip(feeds, where)]

    def _post(self, what: str, body: dict | None = None) -> None:
        import urllib.request
        req = urllib.request.Request(f"{self.base}/v2/systemsharedmemory/region/{self.region}/{what}",
                                     data=json.dumps(body or {}).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        urllib.request.urlopen(req, timeout=30).read()

    def close(self) -> None:
        if self.shm is None:
            return
        try:
            self._post("unregister")
        finally:
            self.shm.close()
            self.shm.unlink()
            self.shm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def triton_answer(res: Result) -> dict:
    """{output: array} from a KServe v2 binary-data answer."""
    n = int(res.headers.get("Inference-Header-Content-Length", len(res.body)))
    head, off, out = json.loads(res.body[:n]), n, {}
    inv = {v: k for k, v in TRITON_TYPES.items()}
    for o in head["outputs"]:
        dt = np.dtype(inv[o["datatype"]])
        size = o.get("parameters", {}).get("binary_data_size")
        if size is None:
            out[o["name"]] = np.asarray(o["data"], dt).reshape(o["shape"])
            continue
        out[o["name"]] = np.frombuffer(res.body[off:off + size], dt).reshape(o["shape"])
        off += size
    return out


def serve_answer(res: Result) -> dict:
    return codec.decode_answer(res.body)


async def _send_all(url: str, bodies: list, concurrency: int, timeout_s: float, on_answer) -> tuple[list, float]:
    import aiohttp
    sem = asyncio.Semaphore(concurrency)
    conn = aiohttp.TCPConnector(limit=concurrency)
    tmo = aiohttp.ClientTimeout(total=timeout_s)

    async def one(session, body, headers):
        async with sem:
            t0 = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                data = await r.read()
                res = Result(r.status, data, dict(r.headers), (time.perf_counter() - t0) * 1e3)
                if on_answer is not None:
                    on_answer(res)
                return res

    async with aiohttp.ClientSession(connector=conn, timeout=tmo) as session:
        t0 = time.perf_counter()
        res = await asyncio.gather(*(one(session, b, h) for b, h in bodies), return_exceptions=True)
        return res, time.perf_counter() - t0


def send_all(url: str, bodies: list, concurrency: int = 1000, timeout_s: float = 300.0,
             on_answer=None) -> tuple[list, float]:
    """POST every (body, headers) once with up to `concurrency` in flight; (results, wall seconds).
    A result is a Result or the exception the client got (e.g. a dropped connection). `on_answer(result)`,
    if given, is called (on the client's event-loop thread) as each answer arrives."""
    return asyncio.run(_send_all(url, bodies, concurrency, timeout_s, on_answer))


def report(results: list, wall_s: float, rows: list) -> dict:
    """Counts, latency percentiles (ms) and throughput (requests/s, rows/s) of a run."""
    ok = [r for r in results if isinstance(r, Result) and r.status == 200]
    lat = np.asarray([r.ms for r in ok]) if ok else np.zeros(1)
    ok_rows = sum(b for r, b in zip(results, rows) if isinstance(r, Result) and r.status == 200)
    return {"requests": len(results), "ok": len(ok), "p50_ms": round(float(np.percentile(lat, 50)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "wall_s": round(wall_s, 3),
            "requests_per_s": round(len(ok) / wall_s, 1), "rows_per_s": round(ok_rows / wall_s, 1)}


def references(engine_path: str, feeds: list, device=None) -> list:
    """Each payload run alone through the Python API: the oracle for batched answers."""
    from .runner import Runner
    r = Runner(engine_path, device=device, warmup="none")  # single requests: one batch size
    return [r.infer(f) for f in feeds]


def deviation(a: dict, ref: dict) -> float:
    """The largest difference between two answers, as a fraction of the reference's largest magnitude
    (inf when outputs are missing or shapes differ)."""
    worst = 0.0
    for n, r in ref.items():
        if a is None or n not in a or a[n].shape != r.shape:
            return float("inf")
        if r.size:
            d = np.abs(a[n].astype(np.float64) - r.astype(np.float64)).max()
            worst = max(worst, float(d / (float(np.abs(r).max()) or 1.0)))
    return worst


def batch_deviation(engine_path: str, feeds: list, refs: list, sizes: tuple, device=None) -> float:
    """How far the engine itself, in this process, answers a row batched with others from the same row
    alone: the first payloads merged into batches of `sizes` rows (payloads of one row each) against
    `refs`. FP16 engines pick other kernels by batch size: session 11, ResNet-50 FP16 on the H200, batch
    8-128 against batch 1 differed by up to 0.024 of the largest logit (cosine >= 0.9998), with no
    server involved; a served answer is judged against this, not against a fixed tolerance."""
    from .runner import Runner
    r = Runner(engine_path, device=device, warmup="none")
    worst = 0.0
    for b in sizes:
        rows = [i for i, f in enumerate(feeds) if next(iter(f.values())).shape[0] == 1][:b]
        if len(rows) < 2:
            continue
        merged = {n: np.concatenate([feeds[i][n] for i in rows]) for n in feeds[rows[0]]}
        out = r.infer(merged)
        for j, i in enumerate(rows):
            worst = max(worst, deviation({n: v[j:j + 1] for n, v in out.items()}, refs[i]))
    return worst


def distinct_distance(refs: list, limit: int = 16) -> float:
    """The smallest deviation between the single-request answers of different payloads (of the first
    `limit`): a check whose tolerance reaches this could not tell a swapped answer from a right one."""
    d = [deviation(refs[i], refs[j]) for i in range(min(limit, len(refs))) for j in range(min(limit, len(refs)))
         if i != j and all(refs[i][n].shape == r.shape for n, r in refs[j].items())]
    return min(d) if d else float("inf")


def mismatches(answers: list, which: list, refs: list, rtol: float = 1e-5, atol: float = 1e-5,
               max_dev: float | None = None) -> list:
    """Indices of answers that are missing or differ from their payload's single-request result
    (atol is relative to the reference's largest magnitude, however small: session 10's trivial GPU
    engine, outputs ~0.005, passed every answer under an absolute floor of 1). With max_dev, an answer
    is wrong when its deviation() exceeds it instead."""
    bad = []
    for k, (a, p) in enumerate(zip(answers, which)):
        ref = refs[p]
        if a is None or set(a) != set(ref):
            bad.append(k)
            continue
        if max_dev is not None:
            if deviation(a, ref) > max_dev:
                bad.append(k)
            continue
        for n, r in ref.items():
            scale = float(np.abs(r).max()) if r.size else 1.0
            if a[n].shape != r.shape or not np.allclose(a[n], r, rtol=rtol, atol=atol * (scale or 1.0)):
                bad.append(k)
                break
    return bad
