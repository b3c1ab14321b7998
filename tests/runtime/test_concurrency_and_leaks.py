"""Concurrency (threads x contexts: outputs identical to a single-threaded run) and leaks (resident
memory flat over thousands of inferences and hundreds of contexts), on the CPU; tests/gpu has the
GPU-memory twin."""
import gc
import os
import threading

import torch

import tensorforge as tf
from tensorforge.testing import rand

from ..core.models import conv_net


def _engine():
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    return tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p])).build(conv_net())


def _rss() -> int:
    """Resident bytes of this process (Linux /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_threads_times_contexts_equal_single_threaded():
    eng = _engine()
    feeds = {(t, i): torch.as_tensor(rand((1 + (t * 3 + i) % 4, 3, 16, 16), seed=50 * t + i))
             for t in range(6) for i in range(5)}
    ref = eng.create_execution_context()
    want = {k: ref.infer({"x": x})["y"].clone() for k, x in feeds.items()}
    # threads 0-3 own a context each; threads 4 and 5 share one (serialized by its lock)
    ctxs = [eng.create_execution_context() for _ in range(4)]
    ctxs += [eng.create_execution_context()] * 2
    got, errors, barrier = {}, [], threading.Barrier(6)

    def work(t):
        try:
            barrier.wait()
            for i in range(5):
                got[(t, i)] = ctxs[t].infer({"x": feeds[(t, i)]})["y"].clone()
        except BaseException as e:  # reported in the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for k, y in want.items():
        assert torch.equal(got[k], y), k


def test_rss_flat_over_thousands_of_inferences():
    eng = _engine()
    ctx = eng.create_execution_context()
    xs = [torch.as_tensor(rand((1 + i % 4, 3, 16, 16), seed=i)) for i in range(4)]
    for i in range(300):  # warm-up: plans of every shape set, allocator pools
        ctx.infer({"x": xs[i % 4]})
    gc.collect()
    before = _rss()
    for i in range(2000):
        ctx.infer({"x": xs[i % 4]})
    gc.collect()
    grew = _rss() - before
    assert grew < 16 << 20, f"resident memory grew by {grew / 2**20:.1f} MiB over 2000 inferences"


def test_rss_flat_over_hundreds_of_contexts():
    eng = _engine()
    x = torch.as_tensor(rand((2, 3, 16, 16), seed=3))
    for _ in range(30):
        eng.create_execution_context().infer({"x": x})
    gc.collect()
    before = _rss()
    for _ in range(200):
        eng.create_execution_context().infer({"x": x})
    gc.collect()
    grew = _rss() - before
    assert grew < 16 << 20, f"resident memory grew by {grew / 2**20:.1f} MiB over 200 contexts"
