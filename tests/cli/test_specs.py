"""Shape strings, wildcard lookup, profile broadcasting and build-flag value parsers."""
from __future__ import annotations

import pytest

from tensorforge.cli.forgeexec.shapes import (UsageError, complete_profile, lookup, parse_name_files, parse_shapes,
                                              split_name_value)
from tensorforge.cli.forgeexec.specs import (parse_layer_output_types, parse_layer_precisions, parse_mem_pools,
                                             parse_percentiles, parse_size, parse_tactic_sources)


def test_shape_strings():
    assert parse_shapes("input:32x3x224x224,mask:32x128") == {"input": (32, 3, 224, 224), "mask": (32, 128)}
    assert parse_shapes("Input:0:1x3") == {"Input:0": (1, 3)}          # the last ':' ends the name
    assert parse_shapes("'Input:0':1x3x224x224") == {"Input:0": (1, 3, 224, 224)}
    assert parse_shapes("s:scalar,t:") == {"s": (), "t": ()}


@pytest.mark.parametrize("bad", ["x:1x-3", "x:1xx3", "x", "x:1,x:2", "a*b*:1", "'x:1", ""])
def test_bad_shape_strings(bad):
    with pytest.raises(UsageError):
        parse_shapes(bad)


def test_windows_path_in_load_inputs():
    assert split_name_value(r"'data':C:\x.bin") == ("data", r"C:\x.bin")
    assert parse_name_files("a:/tmp/a.bin,b:b.bin") == {"a": "/tmp/a.bin", "b": "b.bin"}


def test_wildcards_exact_first():
    table = {"input*": (1,), "input_ids": (2,)}
    assert lookup(table, "input_ids") == (2,) and lookup(table, "input_mask") == (1,) and lookup(table, "x") is None


def test_complete_profile_broadcast():
    warns = []
    prof = complete_profile({}, {"x": (4, 3)}, {}, warns.append)
    assert prof == {"x": ((4, 3), (4, 3), (4, 3))}
    assert warns == ["optShapes is being broadcasted to minShapes for tensor x",
                     "optShapes is being broadcasted to maxShapes for tensor x"]
    warns.clear()
    assert complete_profile({"x": (1,)}, {}, {}, warns.append)["x"] == ((1,), (1,), (1,))
    assert warns[0] == "minShapes is being broadcasted to optShapes for tensor x"


def test_mem_pool_sizes():
    assert parse_size("1024") == 1024 << 20 and parse_size("1.5G") == 3 << 29 and parse_size("512K") == 512 << 10
    assert parse_size("100B") == 100 and parse_size("0.5") == 1 << 19
    assert parse_mem_pools("workspace:2048,tacticSharedMem:1K") == {"workspace": 2 << 30, "tacticSharedMem": 1024}
    with pytest.raises(UsageError):
        parse_mem_pools("scratch:1")


def test_tactic_sources():
    assert parse_tactic_sources("-CUDNN,+cublas_lt") == {"CUDNN": False, "CUBLAS_LT": True}
    for bad in ("CUDNN", "+FOO", "+"):
        with pytest.raises(UsageError):
            parse_tactic_sources(bad)


def test_layer_precisions_later_entries_win():
    assert parse_layer_precisions("*:fp16,conv1:fp32,*:int8") == {"conv1": "float32", "*": "int8"}
    assert parse_layer_output_types("a:fp16+fp32") == {"a": ["float16", "float32"]}


def test_percentiles():
    assert parse_percentiles("50,99.9") == [50.0, 99.9]
    with pytest.raises(UsageError):
        parse_percentiles("-1")
