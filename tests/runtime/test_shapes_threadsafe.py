"""compile_dim / symbols_of are safe when a garbage collection inside their parse runs Python code
that parses too (CPython < 3.11.8 shares the AST constructor's recursion depth, gh-106905: a
context planning shapes in one thread broke another's parse with SystemError / RecursionError)."""
import ast
import contextlib
import gc
import threading

from tensorforge.runtime.shapes import compile_dim, eval_dim, symbols_of


@contextlib.contextmanager
def _parse_in_every_collection():
    """Collect on every allocation and parse inside each collection (another thread's parse)."""
    def cb(phase, info):
        if phase == "start":
            ast.parse("a + b * 2", mode="eval")
    old = gc.get_threshold()
    gc.callbacks.append(cb)
    gc.set_threshold(1)
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.callbacks.remove(cb)


def _expr(tag, n=120):
    return " + ".join(f"floor({tag}_{j} / 2)" for j in range(n))


def test_parse_survives_collections_that_parse():
    was_enabled = gc.isenabled()
    with _parse_in_every_collection():
        for i in range(4):
            env = {f"S{i}_{j}": 3 + j for j in range(120)}
            assert compile_dim(_expr(f"S{i}"))(env) == sum((3 + j) // 2 for j in range(120))
            assert len(symbols_of(_expr(f"T{i}"))) == 120
    assert gc.isenabled() == was_enabled


def test_threads_compile_dims_concurrently():
    errors = []

    def work(t):
        try:
            for i in range(15):
                e = _expr(f"U{t}_{i}", 30)
                assert eval_dim(e, {f"U{t}_{i}_{j}": 4 for j in range(30)}) == 60
        except BaseException as ex:  # reported in the main thread
            errors.append(ex)

    with _parse_in_every_collection():
        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors, errors[:3]
