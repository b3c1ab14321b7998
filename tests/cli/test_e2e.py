"""End-to-end forgeexec runs on the CPU: build/save then load, exports, profile, layer info, inputs."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tensorforge.cli.forgeexec.inputs import make_inputs, random_input

from .forgeexec_helpers import FAST, make_tiny_onnx

CUDA = torch.cuda.is_available()


def _files(tmp_path):
    names = ("times", "profile", "layers", "output")
    return {n: str(tmp_path / f"{n}.json") for n in names}


def test_build_save_then_load_round_trip(cli, tiny_onnx, tmp_path):
    engine = str(tmp_path / "x.engine")
    rc, out, err = cli(f"--onnx={tiny_onnx}", f"--saveEngine={engine}", "--minShapes=x:1x3x8x8",
                       "--optShapes=x:2x3x8x8", "--maxShapes=x:4x3x8x8", *FAST)
    assert rc == 0, err
    for line in ("Set shape of input tensor x for optimization profile 0 to: MIN=1x3x8x8 OPT=2x3x8x8 MAX=4x3x8x8",
                 "Engine built in ", "Created engine with size: ", f"Saved engine to {engine}",
                 "Starting inference", "=== Performance summary ===", "Throughput: ",
                 f"{'GPU' if CUDA else 'CPU'} Compute Time: min = "):
        assert line in out
    assert ("[W] CUDA is not available" in err) == (not CUDA) and "&&&& PASSED" in out
    f = _files(tmp_path)
    rc, out, err = cli(f"--loadEngine={engine}", "--shapes=x:3x3x8x8", "--dumpProfile", "--separateProfileRun",
                       "--dumpLayerInfo", "--profilingVerbosity=detailed", "--dumpOutput",
                       f"--exportTimes={f['times']}",
                       f"--exportProfile={f['profile']}", f"--exportLayerInfo={f['layers']}",
                       f"--exportOutput={f['output']}", *FAST)
    assert rc == 0, err
    assert "Engine deserialized in " in out and "Engine built in" not in out
    assert "=== Performance summary ===" in out and "=== Profile (" in out and "   Total" in out
    assert "Layer Information:" in out and "y: (3x4)" in out
    times = json.load(open(f["times"]))
    assert len(times) >= 3 and {"startEnqMs", "computeMs", "latencyMs", "h2dMs"} <= set(times[0])
    prof = json.load(open(f["profile"]))
    layers = json.load(open(f["layers"]))
    assert prof[0]["count"] >= 3 and [p["name"] for p in prof[1:]] == [l["Name"] for l in layers["Layers"]]
    assert layers["Bindings"] == ["x", "y"] and isinstance(layers["Layers"][0], dict)
    assert layers["Layers"][0]["Inputs"][0]["Dimensions"] == [3, 3, 8, 8]
    assert all(l["Metadata"].startswith("[ONNX Layer: ") for l in layers["Layers"])
    output = json.load(open(f["output"]))
    assert output[0]["name"] == "y" and output[0]["dimensions"] == "3x4"
    # the engine output matches ONNX Runtime on the same (deterministic) random input
    x = random_input("x", "float32", (3, 3, 8, 8), {}, np.random.default_rng(0)).numpy()
    ref = ort.InferenceSession(tiny_onnx, providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(np.array(output[0]["values"]).reshape(3, 4), ref.run(None, {"x": x})[0],
                               rtol=1e-4, atol=1e-5)


def test_layer_names_only_and_profile_without_separate_run(cli, tiny_onnx, tmp_path):
    f = _files(tmp_path)
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--dumpProfile", "--dumpLayerInfo", f"--exportLayerInfo={f['layers']}",
                       "--shapes=x:1x3x8x8", *FAST)
    assert rc == 0, err
    assert "The e2e network timing is not reported" in out and "=== Performance summary ===" not in out
    info = json.load(open(f["layers"]))
    assert info["Bindings"] == ["x", "y"] and all(isinstance(n, str) for n in info["Layers"])
    assert "relu1" in " ".join(info["Layers"])


def test_dynamic_without_shapes_defaults_to_one(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--exportOutput=/dev/null", *FAST)
    assert rc == 0
    assert "Dynamic dimensions required for input: x, but no shapes were provided. Automatically overriding shape " \
           "to: 1x3x8x8" in err


def test_streams_threads_and_cpu_warnings(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--infStreams=2", "--threads", "--useCudaGraph", "--useSpinWait",
                       "--exposeDMA", "--idleTime=1", *FAST)
    assert rc == 0, err
    assert ("--useCudaGraph is ignored on the CPU." in err) == (not CUDA)
    assert ("--useSpinWait is ignored on the CPU." in err) == (not CUDA)
    assert "* Multiple inference streams are used." in err


def test_skip_inference_and_build_only(cli, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--buildOnly", "--dumpLayerInfo", "--dumpOptimizationProfile")
    assert rc == 0
    assert "--buildOnly was removed in trtexec 10.0" in err
    assert "Skipped inference phase since --skipInference is added." in out and "Starting inference" not in out
    assert "Model input x (profile 0): min=1x3x8x8, opt=1x3x8x8, max=1x3x8x8" in out


def test_time_deserialize(cli, tiny_onnx, tmp_path):
    engine = str(tmp_path / "t.engine")
    assert cli(f"--onnx={tiny_onnx}", f"--saveEngine={engine}", "--skipInference")[0] == 0
    rc, out, _ = cli(f"--loadEngine={engine}", "--timeDeserialize")
    assert rc == 0 and "Total deserialization time = " in out and "Starting inference" not in out


def test_load_inputs(cli, tmp_path):
    model = make_tiny_onnx(tmp_path / "static.onnx", batch=2)
    good, bad = tmp_path / "x.bin", tmp_path / "bad.bin"
    np.ones((2, 3, 8, 8), np.float32).tofile(good)
    np.ones(10, np.float32).tofile(bad)
    rc, out, err = cli(f"--onnx={model}", f"--loadInputs=x:{good}", f"--exportOutput={tmp_path}/o.json", *FAST)
    assert rc == 0, err
    want = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {"x": np.ones((2, 3, 8, 8), np.float32)})[0]
    got = np.array(json.load(open(tmp_path / "o.json"))[0]["values"]).reshape(2, 4)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    rc, out, err = cli(f"--onnx={model}", f"--loadInputs=x:{bad}", *FAST)
    assert rc == 1 and "Unexpected file size for input file" in err and "Traceback" not in err
    rc, out, err = cli(f"--onnx={model}", f"--loadInputs=x:{tmp_path}/missing.bin", *FAST)
    assert rc == 1 and "Cannot open input file" in err
    rc, out, err = cli(f"--onnx={model}", f"--loadInputs=nope:{good}", *FAST)
    assert rc == 1 and 'Cannot find input tensor with name "nope"' in err


def test_bad_shape_name_and_static_model_profiles(cli, tmp_path, tiny_onnx):
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--minShapes=zz:1x3x8x8", *FAST)
    assert rc == 1 and 'Cannot find input tensor with name "zz"' in err
    static = make_tiny_onnx(tmp_path / "static.onnx", batch=2)
    rc, out, err = cli(f"--onnx={static}", "--minShapes=x:1x3x8x8", *FAST)
    assert rc == 1 and "Static model does not take explicit shapes" in err
    rc, out, err = cli(f"--onnx={tiny_onnx}", "--shapes=x:1x3x8x8", "--useProfile=3", *FAST)
    assert rc == 1 and "--useProfile=3 is out of range" in err


def test_random_inputs_never_all_zero():
    rng = np.random.default_rng(0)
    assert random_input("ids", "int64", (1,), {}, rng).abs().sum() > 0
    mask = random_input("attention_mask", "int64", (4, 16), {}, rng)
    assert set(mask.unique().tolist()) <= {0, 1} and bool((mask[:, 0] == 1).all())
    ids = random_input("input_ids", "int64", (2, 64), {"input_ids": (0, 30)}, rng)
    assert int(ids.min()) >= 0 and int(ids.max()) < 30
    x = random_input("x", "float16", (3, 5), {}, rng)
    assert x.dtype.is_floating_point and float(x.abs().max()) <= 1.0

    class D:
        name, dtype, shape = "x", "float32", (2, 2)
    assert make_inputs([D()], {"x": (2, 2)}, {}, {})["x"].shape == (2, 2)


@pytest.mark.parametrize("zoo", ["zoo:resnet50_small", "zoo:bert_base_small"])
def test_zoo_round_trip(cli, tmp_path, zoo):
    engine, f = str(tmp_path / "z.engine"), _files(tmp_path)
    rc, out, err = cli(f"--onnx={zoo}", f"--saveEngine={engine}", "--builderOptimizationLevel=0", *FAST)
    assert rc == 0, err
    rc, out, err = cli(f"--loadEngine={engine}", *FAST, "--dumpProfile", "--separateProfileRun", "--dumpLayerInfo",
                       "--profilingVerbosity=detailed", f"--exportTimes={f['times']}",
                       f"--exportProfile={f['profile']}", f"--exportLayerInfo={f['layers']}",
                       f"--exportOutput={f['output']}")
    assert rc == 0, err
    data = {k: json.load(open(path)) for k, path in f.items()}
    assert data["profile"][0]["count"] >= 3 and len(data["times"]) >= 3
    assert all(o["dimensions"] and o["values"] for o in data["output"])
    assert all(set(l) >= {"Name", "LayerType", "Inputs", "Outputs", "TacticName", "TacticValue", "StreamId",
                          "Metadata"} for l in data["layers"]["Layers"])


def test_two_profiles_and_use_profile(cli, tiny_onnx):
    prof = ["--profile=0", "--minShapes=x:1x3x8x8", "--optShapes=x:2x3x8x8", "--maxShapes=x:2x3x8x8",
            "--profile=1", "--minShapes=x:3x3x8x8", "--optShapes=x:4x3x8x8", "--maxShapes=x:6x3x8x8"]
    rc, out, err = cli(f"--onnx={tiny_onnx}", *prof, "--useProfile=1", "--dumpOptimizationProfile",
                       "--exportOutput=/dev/null", "--dumpOutput", *FAST)
    assert rc == 0, err
    assert "Model input x (profile 1): min=3x3x8x8, opt=4x3x8x8, max=6x3x8x8" in out
    assert "y: (4x4)" in out  # inference runs at profile 1's opt shape
    rc, out, err = cli(f"--onnx={tiny_onnx}", *prof, *FAST)
    assert rc == 0 and "--useProfile is not specified; profile 0 is used" in err


@pytest.mark.parametrize("mode", ["arena", "direct"])
def test_activation_memory_flag_reaches_the_engine(cli, tiny_onnx, tmp_path, mode):
    from tensorforge.runtime.engine import Engine
    engine = str(tmp_path / f"{mode}.engine")
    rc, out, err = cli(f"--onnx={tiny_onnx}", f"--saveEngine={engine}", "--shapes=x:2x3x8x8",
                       f"--activationMemory={mode}", "--skipInference")
    assert rc == 0, err
    assert f"Activation memory: {mode}" in out
    assert Engine.load(engine).plan.config["activation_memory"] == mode
