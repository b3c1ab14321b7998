"""The mixed-batch request set of the load tests: distinct payloads, single-request references."""
import numpy as np

from tensorforge.serve.runner import Runner

from .engines import images

SIZES = (1, 1, 1, 2, 1, 4, 2, 1, 3, 1)  # mixed batch sizes, 1.7 rows per request on average


def payloads(n_distinct=40, seed=7):
    return [{"input": images(SIZES[i % len(SIZES)], seed=seed + i)} for i in range(n_distinct)]


def references(engine_path, feeds):
    """Each payload run alone through the Python API (the oracle for batched answers)."""
    r = Runner(engine_path)
    return [r.infer(f)["output"] for f in feeds]


def plan(n_requests, n_distinct):
    """Which payload each request carries (spread so batch-mates differ)."""
    return [(i * 7) % n_distinct for i in range(n_requests)]


def check_answers(answers, which, refs):
    """Every answer present, right shape, and equal to its payload's single-request result."""
    bad = []
    for k, (a, p) in enumerate(zip(answers, which)):
        if a is None or a.shape != refs[p].shape or not np.allclose(a, refs[p], rtol=1e-5, atol=1e-5):
            bad.append(k)
    return bad
