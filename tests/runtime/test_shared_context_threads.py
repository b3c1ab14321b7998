"""Threads sharing one ExecutionContext are serialized: every output equals the single-threaded one."""
import threading

import torch

import tensorforge as tf
from tensorforge.testing import rand

from ..core.models import conv_net


def test_eight_threads_share_one_context():
    p = tf.OptimizationProfile()
    p.set_shape("x", (1, 3, 16, 16), (2, 3, 16, 16), (4, 3, 16, 16))
    eng = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[p])).build(conv_net())
    feeds = {(t, i): torch.as_tensor(rand((1 + (t + i) % 4, 3, 16, 16), seed=100 * t + i))
             for t in range(8) for i in range(6)}
    ref_ctx = eng.create_execution_context()
    want = {k: ref_ctx.infer({"x": x})["y"] for k, x in feeds.items()}
    shared = eng.create_execution_context()
    got, errors, barrier = {}, [], threading.Barrier(8)

    def work(t):
        try:
            barrier.wait()
            for i in range(6):
                got[(t, i)] = shared.infer({"x": feeds[(t, i)]})["y"]
        except BaseException as e:  # reported in the main thread
            errors.append(e)
    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert len(got) == len(want)
    for k, y in want.items():
        assert torch.equal(got[k], y), k
