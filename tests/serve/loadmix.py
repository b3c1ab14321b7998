"""The mixed-batch request set of the load tests: distinct payloads, single-request references."""
from tensorforge.serve import loadtest

from .engines import images

SIZES = (1, 1, 1, 2, 1, 4, 2, 1, 3, 1)  # mixed batch sizes, 1.7 rows per request on average


def payloads(n_distinct=40, seed=7):
    return [{"input": images(SIZES[i % len(SIZES)], seed=seed + i)} for i in range(n_distinct)]


def references(engine_path, feeds):
    """{output: array} of each payload run alone through the Python API."""
    return loadtest.references(engine_path, feeds)


def plan(n_requests, n_distinct):
    """Which payload each request carries (spread so batch-mates differ)."""
    return [(i * 7) % n_distinct for i in range(n_requests)]


def check_answers(answers, which, refs):
    """Indices of answers missing or not equal (fp32, 1e-5) to their payload's single-request result."""
    return loadtest.mismatches(answers, which, refs)
