"""Data-dependent shapes: NonZero, Range with run-time bounds, Unique, NonMaxSuppression, TopK with a
computed k, Expand/Reshape/ConstantOfShape/Tile/Slice from computed values, each with layers after
it; one engine, several inputs giving different output sizes (zero included), vs ONNX Runtime."""
import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h

import tensorforge as tf
from tensorforge import frontend
from tensorforge.ir.symbolic import DATA_DEPENDENT_PREFIX, free_symbols
from tensorforge.testing import run_ort

F, I64 = T.FLOAT, T.INT64


def _c(name, dt, v):
    v = np.asarray(v)
    return h.make_tensor(name, dt, list(v.shape), v.reshape(-1).tolist())


def _model(nodes, inputs, outputs, inits=(), opset=17):
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(n, dt, s) for n, dt, s in inputs],
                     [h.make_tensor_value_info(n, dt, None) for n, dt in outputs], list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)], ir_version=10)  # ORT 1.30 reads IR <= 13


def _count_nodes(x="x"):
    """n = int64(ReduceSum(x > 0)) as a 1-element tensor: a size known only at run time."""
    return [h.make_node("Greater", [x, "zero_f"], ["pos"]), h.make_node("Cast", ["pos"], ["posf"], to=F),
            h.make_node("ReduceSum", ["posf"], ["cnt"], keepdims=1), h.make_node("Reshape", ["cnt", "one_shape"], ["cntr"]),
            h.make_node("Cast", ["cntr"], ["n"], to=I64)]


COUNT_INITS = [_c("zero_f", F, 0.0), _c("one_shape", I64, [1])]


def _nonzero():
    nodes = [h.make_node("Greater", ["x", "zero_f"], ["c"]), h.make_node("NonZero", ["c"], ["nz"]),
             h.make_node("Transpose", ["nz"], ["idx"], perm=[1, 0]), h.make_node("GatherND", ["x", "idx"], ["vals"]),
             h.make_node("Mul", ["vals", "vals"], ["sq"]), h.make_node("ReduceSum", ["sq"], ["total"], keepdims=0),
             h.make_node("Shape", ["nz"], ["s"]), h.make_node("Gather", ["s", "one"], ["cnt"], axis=0),
             h.make_node("Cast", ["cnt"], ["cntf"], to=F), h.make_node("Add", ["total", "cntf"], ["y"])]
    return _model(nodes, [("x", F, [3, 4])], [("sq", F), ("y", F), ("idx", I64)],
                  [_c("zero_f", F, 0.0), _c("one", I64, 1)])


def _range():
    nodes = _count_nodes() + [h.make_node("Squeeze", ["n", "ax0"], ["lim"]),
                              h.make_node("Range", ["start", "lim", "step"], ["r"]),
                              h.make_node("Cast", ["r"], ["rf"], to=F), h.make_node("Mul", ["rf", "scale"], ["y"]),
                              h.make_node("Softmax", ["y"], ["p"], axis=0)]
    return _model(nodes, [("x", F, [6])], [("y", F), ("p", F)],
                  COUNT_INITS + [_c("ax0", I64, [0]), _c("start", I64, 1), _c("step", I64, 2), _c("scale", F, 0.5)])


def _unique():
    nodes = [h.make_node("Unique", ["x"], ["u", "first", "inv", "cnt"], sorted=1),
             h.make_node("Neg", ["u"], ["nu"]), h.make_node("Cast", ["cnt"], ["cf"], to=F),
             h.make_node("Mul", ["nu", "cf"], ["y"]), h.make_node("Gather", ["u", "inv"], ["back"], axis=0)]
    return _model(nodes, [("x", F, [8])], [("y", F), ("first", I64), ("back", F)])


def _nms():
    nodes = [h.make_node("NonMaxSuppression", ["boxes", "scores", "maxo", "iou", "sth"], ["sel"]),
             h.make_node("Slice", ["sel", "s2", "e3", "ax1"], ["bi"]), h.make_node("Squeeze", ["bi", "ax1"], ["b"]),
             h.make_node("Gather", ["boxes0", "b"], ["kept"], axis=0), h.make_node("Abs", ["kept"], ["y"])]
    return _model(nodes, [("boxes", F, [1, 6, 4]), ("scores", F, [1, 1, 6])], [("y", F), ("sel", I64)],
                  [_c("maxo", I64, [4]), _c("iou", F, [0.5]), _c("sth", F, [0.3]), _c("s2", I64, [2]),
                   _c("e3", I64, [3]), _c("ax1", I64, [1])]), "boxes"


def _topk():
    nodes = _count_nodes() + [h.make_node("Max", ["n", "one_i"], ["k"]),  # k >= 1
                              h.make_node("TopK", ["x", "k"], ["v", "i"], axis=-1),
                              h.make_node("Relu", ["v"], ["y"]), h.make_node("Cast", ["i"], ["if"], to=F),
                              h.make_node("Add", ["y", "if"], ["z"])]
    return _model(nodes, [("x", F, [6])], [("z", F), ("i", I64)], COUNT_INITS + [_c("one_i", I64, [1])])


def _expand_reshape():
    """shape = [n, 2] from a count: Expand b to it, Reshape a Range of 2n to it, a ConstantOfShape,
    a Tile, a Slice ending at n, a Split into n and 6 - n, a Pad by n; then layers after each."""
    nodes = _count_nodes() + [
        h.make_node("Max", ["n", "one_i"], ["n1"]),
        h.make_node("Concat", ["n1", "two"], ["shp"], axis=0),
        h.make_node("Expand", ["b", "shp"], ["e"]), h.make_node("Add", ["e", "e"], ["ye"]),
        h.make_node("ReduceProd", ["shp"], ["tot"], keepdims=0),
        h.make_node("Range", ["z_i", "tot", "one_s"], ["r"]), h.make_node("Reshape", ["r", "shp"], ["rr"]),
        h.make_node("Transpose", ["rr"], ["yr"], perm=[1, 0]),
        h.make_node("ConstantOfShape", ["shp"], ["cs"], value=h.make_tensor("v", F, [1], [2.5])),
        h.make_node("MatMul", ["cs", "w"], ["yc"]),
        h.make_node("Concat", ["n1", "one_i"], ["reps"], axis=0),
        h.make_node("Tile", ["b", "reps"], ["t"]), h.make_node("Sigmoid", ["t"], ["yt"]),
        h.make_node("Slice", ["x", "z1", "n", "z1"], ["xs"]), h.make_node("Neg", ["xs"], ["ys"]),
        h.make_node("Sub", ["six", "n"], ["rest"]), h.make_node("Concat", ["n", "rest"], ["parts"], axis=0),
        h.make_node("Split", ["x", "parts"], ["p0", "p1"], axis=0), h.make_node("Mul", ["p1", "p1"], ["yp"]),
        h.make_node("Concat", ["z1", "n"], ["pads"], axis=0),
        h.make_node("Pad", ["p0", "pads"], ["padded"], mode="constant"), h.make_node("Abs", ["padded"], ["ya"])]
    inits = COUNT_INITS + [_c("one_i", I64, [1]), _c("two", I64, [2]), _c("z_i", I64, 0), _c("one_s", I64, 1),
                           _c("z1", I64, [0]), _c("w", F, np.arange(6, dtype=np.float32).reshape(2, 3)),
                           _c("six", I64, [6])]
    return _model(nodes, [("x", F, [6]), ("b", F, [1, 2])],
                  [("ye", F), ("yr", I64), ("yc", F), ("yt", F), ("ys", F), ("yp", F), ("ya", F)], inits, opset=18)


def _feeds(name, rng):
    if name == "nonzero":
        return [{"x": rng.standard_normal((3, 4)).astype(np.float32)} for _ in range(3)] + \
            [{"x": -np.ones((3, 4), np.float32)}, {"x": np.ones((3, 4), np.float32)}]
    if name == "unique":
        return [{"x": rng.integers(0, k, 8).astype(np.float32)} for k in (2, 5, 8, 1)]
    if name == "nms":
        feeds = []
        for k in range(4):
            boxes = rng.uniform(0, 1, (1, 6, 4)).astype(np.float32)
            boxes[..., 2:] = boxes[..., :2] + rng.uniform(0.1, 0.6, (1, 6, 2))
            feeds.append({"boxes": boxes, "scores": rng.uniform(0, 1, (1, 1, 6)).astype(np.float32) * k / 3})
        return feeds
    x = [np.array(v, np.float32) for v in ([1, -2, 3, 4, -5, 6], [-1, -2, -3, -4, -5, -6],
                                           [1, 2, 3, 4, 5, 6], [0, 3, 0, -1, 2, 0])]
    feeds = [{"x": v} for v in x]
    if name == "expand_reshape":
        for f in feeds:
            f["b"] = np.array([[1.5, -2.0]], np.float32)
    if name == "resize":
        for f in feeds:
            f["img"] = np.arange(18, dtype=np.float32).reshape(1, 2, 3, 3)
    return feeds


def _resize():
    """Resize to sizes computed from the data (n x n), then a convolution-like reduction after it."""
    nodes = _count_nodes() + [h.make_node("Max", ["n", "one_i"], ["n1"]),
                              h.make_node("Concat", ["n1", "n1"], ["hw"], axis=0),
                              h.make_node("Resize", ["img", "", "", "hw"], ["r"], mode="nearest", axes=[2, 3]),
                              h.make_node("ReduceMean", ["r", "ax23"], ["y"], keepdims=0),
                              h.make_node("Relu", ["r"], ["z"])]
    return _model(nodes, [("x", F, [6]), ("img", F, [1, 2, 3, 3])], [("y", F), ("z", F)],
                  COUNT_INITS + [_c("one_i", I64, [1]), _c("ax23", I64, [2, 3])], opset=18)


CASES = {"resize": _resize, "nonzero": _nonzero, "range": _range, "unique": _unique, "nms": _nms, "topk": _topk,
         "expand_reshape": _expand_reshape}


@pytest.mark.parametrize("name", list(CASES))
def test_data_dependent_op_then_layers_match_ort(name):
    m = CASES[name]()
    if isinstance(m, tuple):  # NMS: the gathered box table is the first image's boxes
        m, src = m
        m.graph.node.insert(0, h.make_node("Squeeze", [src, "ax0n"], ["boxes0"]))
        m.graph.initializer.append(_c("ax0n", I64, [0]))
    g = frontend.load(m)
    assert any(s.startswith(DATA_DEPENDENT_PREFIX) for v in g.outputs for s in free_symbols(v.shape)), \
        [v.shape for v in g.outputs]
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(m)
    ctx = eng.create_execution_context()
    sizes = set()
    for feed in _feeds(name, np.random.default_rng(0)):
        got, ref = ctx.infer(feed), run_ort(m, feed)
        for k, r in ref.items():
            assert tuple(got[k].shape) == r.shape, (k, tuple(got[k].shape), r.shape)
            np.testing.assert_allclose(got[k].numpy(), r, rtol=1e-5, atol=1e-6, err_msg=k)
        sizes.add(tuple(tuple(r.shape) for r in ref.values()))
    assert len(sizes) > 1, "the inputs must give different output sizes"


def test_topk_with_k_input_as_shape_tensor():
    """k as a graph input: a shape tensor (values in the profile), outputs sized by its value."""
    m = _model([h.make_node("TopK", ["x", "k"], ["v", "i"], axis=1), h.make_node("Neg", ["v"], ["y"])],
               [("x", F, [2, 8]), ("k", I64, [1])], [("y", F), ("i", I64)])
    prof = tf.OptimizationProfile()
    prof.set_shape_input("k", (1,), (3,), (8,))
    ctx = tf.Builder(tf.BuilderConfig(device="cpu", profiles=[prof])).build(m).create_execution_context()
    rng = np.random.default_rng(1)
    for k in (3, 1, 8):
        feed = {"x": rng.standard_normal((2, 8)).astype(np.float32), "k": np.array([k], np.int64)}
        got, ref = ctx.infer(feed), run_ort(m, feed)
        for name, r in ref.items():
            np.testing.assert_allclose(got[name].numpy(), r, rtol=1e-6, err_msg=name)


# ---- regions: pure functions over the plan -----------------------------------------------------------
def test_static_layers_come_first_and_dynamic_tail_is_marked():
    """A classifier branch after NMS in the file is still static: it moves before the dynamic tail."""
    from tensorforge.runtime.dynamic import dynamic_layers, first_dynamic, static_prefix
    nodes = [h.make_node("Greater", ["x", "zero_f"], ["c"]), h.make_node("NonZero", ["c"], ["nz"]),
             h.make_node("ReduceSum", ["nz"], ["s"], keepdims=0),  # static shape, dynamic input
             h.make_node("Relu", ["x"], ["r"]), h.make_node("Softmax", ["r"], ["p"])]
    m = _model(nodes, [("x", F, [3, 4])], [("s", I64), ("p", F)], [_c("zero_f", F, 0.0)])
    eng = tf.Builder(tf.BuilderConfig(device="cpu", fusion=False)).build(m)
    p = eng.plan
    order = [lay.type for lay in p.layers]
    k = first_dynamic(p.layers, p.tensors)
    assert order[k:] == ["NonZero", "ReduceSum"] and {"Relu", "Softmax", "Greater"} <= set(order[:k])
    assert dynamic_layers(p.layers, p.tensors) == [False] * k + [True] * (len(order) - k)
    names = [lay.name for lay in p.layers]
    assert static_prefix(p.layers, p.tensors, names) == k and static_prefix(p.layers, p.tensors, names[:k]) == k
    x = np.random.default_rng(3).standard_normal((3, 4)).astype(np.float32)
    got, ref = eng.create_execution_context().infer({"x": x}), run_ort(m, {"x": x})
    np.testing.assert_allclose(got["p"].numpy(), ref["p"], rtol=1e-6)
    assert int(got["s"]) == int(ref["s"])


def test_learn_sizes():
    from tensorforge.ir.symbolic import DATA_DEPENDENT_PREFIX as IR_PREFIX
    from tensorforge.runtime.dynamic import DATA_DEPENDENT_PREFIX, dd_symbols, learn_sizes
    assert DATA_DEPENDENT_PREFIX == IR_PREFIX
    assert dd_symbols([2, "dd_nz", "N*dd_r + 1", "M"]) == {"dd_nz", "dd_r"}
    assert learn_sizes([2, "dd_nz"], (2, 7), {}) == {"dd_nz": 7}
    assert learn_sizes(["dd_a", "dd_a", "N"], (3, 3, 5), {"N": 5}) == {"dd_a": 3}
    assert learn_sizes(["dd_a + 1"], (4,), {}) == {}  # only bare sizes are learned
    for shape, actual, env in (([2, "dd_nz"], (3, 1), {}), (["dd_a", "dd_a"], (3, 4), {}),
                               (["dd_a"], (3,), {"dd_a": 2}), ([2], (2, 1), {})):
        with pytest.raises(ValueError):
            learn_sizes(shape, actual, env)


def test_output_allocator_receives_run_time_sized_outputs():
    """The low-level API: no address for a data-dependent output; the allocator is asked for memory
    once its size is known, grows only when too small, and is told the shape."""
    from tensorforge.runtime.dynamic import OutputAllocator

    class Counting(OutputAllocator):
        calls = 0

        def reallocate_output(self, name, shape, dtype, device):
            Counting.calls += 1
            return super().reallocate_output(name, shape, dtype, device)

    import torch
    m = _nonzero()
    eng = tf.Builder(tf.BuilderConfig(device="cpu")).build(m)
    ctx = eng.create_execution_context()
    alloc = Counting()
    for name in ("sq", "idx"):
        ctx.set_output_allocator(name, alloc)
    assert ctx.get_output_allocator("sq") is alloc
    x = torch.zeros(3, 4)
    y = torch.empty(())
    ctx.set_input_shape("x", (3, 4))
    assert ctx.get_tensor_shape("idx") == (-1, 2)  # TensorRT's convention before the size is known
    ctx.set_tensor_address("x", x)
    ctx.set_tensor_address("y", y)
    for vals in (np.ones((3, 4)), np.eye(3, 4), -np.ones((3, 4)), np.ones((3, 4))):
        x.copy_(torch.from_numpy(vals.astype(np.float32)))
        ctx.execute_async()
        ref = run_ort(m, {"x": x.numpy()})
        assert alloc.shapes["idx"] == ref["idx"].shape == ctx.get_tensor_shape("idx")  # known once run
        np.testing.assert_array_equal(alloc.output("idx").numpy(), ref["idx"])
        np.testing.assert_allclose(alloc.output("sq").numpy(), ref["sq"])
        np.testing.assert_allclose(y.numpy(), ref["y"], rtol=1e-6)
    assert Counting.calls == 8 and alloc.buffers["idx"].numel() == 24  # grown once to 12 x 2, then reused


def test_static_prefix_then_dynamic_tail_equals_one_run():
    """What a CUDA-graph replay of the static prefix followed by the eager tail does, on the CPU:
    the runner runs launches[:n], then launches[n:] from those slots; outputs equal one full run."""
    import torch
    from tensorforge.runtime import steps
    from tensorforge.runtime.dynamic import static_prefix
    m = _nonzero()
    ctx = tf.Builder(tf.BuilderConfig(device="cpu", fusion=False)).build(m).create_execution_context()
    x = np.random.default_rng(7).standard_normal((3, 4)).astype(np.float32)
    full = {k: v.clone() for k, v in ctx.infer({"x": x}).items()}
    xp = ctx.exec_plan
    n = static_prefix(ctx.plan.layers, ctx.plan.tensors, [L.name for L in xp.launches])
    assert 0 < n < len(xp.launches) and xp.has_dynamic
    head, _ = steps.run(xp, None, stop=n)
    assert all(head[L.outs[0]] is None for L in xp.launches[n:] if L.planned[0] is None)  # tail not run yet
    tail, _ = steps.run(xp, None, start=n, slots=head)
    got = dict(zip(xp.names, tail))
    for k, v in full.items():
        torch.testing.assert_close(got[k], v)


def test_graph_prefix_stops_at_a_host_synchronizing_kernel():
    """A kernel marked capturable=False (control flow) ends the CUDA-graph prefix like a dynamic layer."""
    from types import SimpleNamespace as NS

    from tensorforge.runtime.dynamic import graph_prefix

    def fn(capturable=True):
        f = lambda *a: a  # noqa: E731
        if not capturable:
            f.capturable = False
        return f
    plan = NS(layers=[NS(name=n, inputs=[], outputs=[]) for n in "abc"], tensors={})
    xp = NS(has_dynamic=True, launches=[NS(name="a", fn=fn()), NS(name="b", fn=fn(False)), NS(name="c", fn=fn())])
    assert graph_prefix(plan, xp) == 1
    assert graph_prefix(plan, NS(has_dynamic=False, launches=xp.launches)) == 3
