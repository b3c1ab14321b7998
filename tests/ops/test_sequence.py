"""Sequence and optional ops against ONNX Runtime (CPU): sequences inside a model with tensor I/O,
built in a Loop body, and sequences / optionals as engine inputs and outputs (host objects)."""
import numpy as np
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tensorforge.backend import prepare
from tensorforge.testing import check_against_ort, make_model, rand, run_ort

F, I64, B = T.FLOAT, T.INT64, T.BOOL


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def test_split_at_insert_erase_concat_inside_a_model():
    nodes = [h.make_node("SplitToSequence", ["x", "split"], ["s"], axis=1),
             h.make_node("SequenceAt", ["s", "one"], ["mid"]),
             h.make_node("SequenceInsert", ["s", "mid", "zero"], ["s2"]),
             h.make_node("SequenceErase", ["s2", "minus1"], ["s3"]),
             h.make_node("SequenceLength", ["s3"], ["n"]),
             h.make_node("ConcatFromSequence", ["s3"], ["cat"], axis=1),
             h.make_node("SequenceConstruct", ["mid", "mid"], ["pair"]),
             h.make_node("ConcatFromSequence", ["pair"], ["stk"], axis=0, new_axis=1)]
    inits = [_c("split", np.array([1, 2, 3], np.int64)), _c("one", np.int64(1)), _c("zero", np.int64(0)),
             _c("minus1", np.int64(-1))]
    model = make_model(nodes, [("x", F, [2, 6])], [("cat", F, None), ("n", I64, None), ("stk", F, None)], inits)
    check_against_ort(model, {"x": rand((2, 6), seed=1)})


def test_loop_collects_a_sequence():
    body = h.make_graph([h.make_node("Cast", ["i"], ["fi"], to=F), h.make_node("Mul", ["x", "fi"], ["xi"]),
                         h.make_node("SequenceInsert", ["seq_in", "xi"], ["seq_out"]),
                         h.make_node("Identity", ["c"], ["c_out"])], "body",
                        [h.make_tensor_value_info("i", I64, []), h.make_tensor_value_info("c", B, []),
                         h.make_tensor_sequence_value_info("seq_in", F, None)],
                        [h.make_tensor_value_info("c_out", B, []),
                         h.make_tensor_sequence_value_info("seq_out", F, None)])
    nodes = [h.make_node("SequenceEmpty", [], ["empty"], dtype=F),
             h.make_node("Loop", ["M", "", "empty"], ["seq"], body=body),
             h.make_node("ConcatFromSequence", ["seq"], ["out"], axis=0, new_axis=1)]
    model = make_model(nodes, [("x", F, [3])], [("out", F, None)], [_c("M", np.int64(4))])
    check_against_ort(model, {"x": rand((3,), seed=2)})


def test_sequence_and_optional_engine_io():
    """A sequence input and output, an optional output (empty and full), through the backend."""
    then = h.make_graph([h.make_node("Optional", ["t"], ["o1"])], "then", [],
                        [h.make_tensor_value_info("o1", T.UNDEFINED, None)])
    then.output[0].type.CopyFrom(h.make_optional_type_proto(h.make_tensor_type_proto(F, [3])))
    other = h.make_graph([h.make_node("Optional", [], ["o2"],
                                      type=h.make_tensor_type_proto(F, [3]))], "else", [], [])
    other.output.extend([then.output[0]])
    other.output[0].name = "o2"
    nodes = [h.make_node("SequenceAt", ["s", "zero"], ["t"]),
             h.make_node("SequenceInsert", ["s", "t"], ["s_out"]),
             h.make_node("If", ["flag"], ["opt"], then_branch=then, else_branch=other),
             h.make_node("OptionalHasElement", ["opt"], ["has"])]
    seq_in = h.make_tensor_sequence_value_info("s", F, [3])
    outs = [h.make_tensor_sequence_value_info("s_out", F, [3]), h.make_tensor_value_info("has", B, [])]
    opt_out = h.make_tensor_value_info("opt", T.UNDEFINED, None)
    opt_out.type.CopyFrom(h.make_optional_type_proto(h.make_tensor_type_proto(F, [3])))
    model = make_model(nodes, [seq_in, ("flag", B, [])], outs + [opt_out], [_c("zero", np.int64(0))], opset=18)
    rep = prepare(model)
    seq = [rand((3,), seed=3), rand((3,), seed=4)]
    for flag in (True, False):
        s_out, has, opt = rep.run([seq, np.array(flag)])
        ref = run_ort(model, {"s": seq, "flag": np.array(flag)})
        assert len(s_out) == len(ref["s_out"]) == 3
        for a, b in zip(s_out, ref["s_out"]):
            np.testing.assert_array_equal(a, b)
        assert bool(has) == bool(ref["has"]) == flag
        assert (opt is None) == (ref["opt"] is None)
        if flag:
            np.testing.assert_array_equal(opt, ref["opt"])
