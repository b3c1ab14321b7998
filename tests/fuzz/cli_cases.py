"""forgeexec / tensorforge flag fuzzing: random flags and values, special files, outputs onto inputs."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .harness import Case

FAST = ["--iterations=1", "--duration=0", "--warmUp=0"]
INT_VALUES = ["-1", "0", "1", "3", str(2**31), str(2**63), "abc", "", "1e3", "0x10"]
FLOAT_VALUES = ["nan", "-1", "1e308", "inf", "0", "x"]
SHAPE_VALUES = ["x:2x3x8x8", "x:1099511627776x3x8x8", "x:-1x3x8x8", "x:0x3x8x8", "x:2x3x8", "bogus",
                "x:4611686018427387904x4611686018427387904x8x8", "x:2x3x65536x65536", "y:2x4", "x:", "x:2*3"]
STR_FLAGS = {"--memPoolSize": ["workspace:-1", "workspace:1e30", "bogus:1", "workspace"],
             "--profilingVerbosity": ["detailed", "none", "zzz"], "--precisionConstraints": ["obey", "zz"],
             "--layerPrecisions": ["*:fp16", "conv1:int3", ":::"], "--tacticSources": ["-CUBLAS", "+nope", ""],
             "--activationMemory": ["direct", "zz"], "--percentile": ["99", "101", "-5", "a,b"],
             "--inputIOFormats": ["fp16:chw", "zz"], "--allocationStrategy": ["static", "zz"],
             "--layerOutputTypes": ["conv1:fp16", "x"]}
INT_FLAGS = ["--iterations", "--avgRuns", "--builderOptimizationLevel", "--maxAuxStreams", "--streams",
             "--device", "--profile", "--useProfile", "--avgTiming", "--maxTactics", "--sleepTime", "--idleTime"]
FLOAT_FLAGS = ["--duration", "--warmUp", "--persistentCacheRatio"]
BOOL_FLAGS = ["--fp16", "--bf16", "--int8", "--best", "--noTF32", "--useCudaGraph", "--dumpOutput",
              "--dumpProfile", "--dumpLayerInfo", "--separateProfileRun", "--skipInference", "--timeDeserialize",
              "--stronglyTyped", "--noBuilderCache", "--verbose", "--refit", "--exposeDMA", "--threads"]
OUT_FLAGS = ["--saveEngine", "--exportTimes", "--exportOutput", "--exportProfile", "--exportLayerInfo",
             "--timingCacheFile", "--quantReport"]
# tensorforge subcommands that write files, pointed at their inputs and at special files
# (argv with {names} of the case's fixtures, and the fixtures the command must leave as they were)
TF_CASES = [
    ("quantize {model.onnx} -o {model.onnx}", ["model.onnx"]),
    ("quantize {model.onnx} -o {d}/q.onnx --write-cache {model.onnx}", ["model.onnx"]),
    ("quantize {model.onnx} -o {d}/q.onnx --calib-cache {fifo}", ["model.onnx"]),
    ("quantize {model.onnx} -o {d}/q.onnx --calib-cache {notes.txt}", ["model.onnx", "notes.txt"]),
    ("quantize {model.onnx} -o {d}/q.onnx --calib-data {x.bin}", ["model.onnx", "x.bin"]),
    ("quantize {model.onnx} -o {dir}", ["model.onnx"]),
    ("report {model.engine} -o {model.engine}", ["model.engine"]),
    ("report --profile {fifo} -o {d}/r.html", []),
    ("report --profile {notes.txt} -o {notes.txt}", ["notes.txt"]),
    ("refit {model.engine} {model.onnx} -o {model.onnx}", ["model.onnx", "model.engine"]),
    ("export-triton {model.engine} {model.engine}", ["model.engine"]),
    ("export-triton {model.engine} {d}/repo --model-name {notes.txt}", ["model.engine", "notes.txt"]),
    ("compare {model.onnx} --loadInputs=x:{fifo}", ["model.onnx"]),
    ("debug precision {model.onnx} --fp16 --loadInputs=x:{zero}", ["model.onnx"]),
]


def tiny_model(path: str) -> str:
    """Conv -> Relu -> GlobalAveragePool -> Flatten, x [N,3,8,8] -> y [N,4]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="gap"),
             helper.make_node("Flatten", ["p"], ["y"], name="flatten")]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def fixtures(workdir: str) -> dict:
    """Originals of every file a CLI case may name (copied fresh into the case's folder)."""
    src = os.path.join(workdir, "cli_src")
    if not os.path.isdir(src):
        os.makedirs(src)
        tiny_model(os.path.join(src, "model.onnx"))
        import tensorforge as tf
        tf.Builder(tf.BuilderConfig(opt_level=0, device="cpu")).build(os.path.join(src, "model.onnx")).save(
            os.path.join(src, "model.engine"))
        np.zeros((1, 3, 8, 8), np.float32).tofile(os.path.join(src, "x.bin"))
        with open(os.path.join(src, "notes.txt"), "w") as f:
            f.write("my notes\n")
        with open(os.path.join(src, "other.json"), "w") as f:
            json.dump({"version": 1, "something": "else"}, f)
    return {n: os.path.join(src, n) for n in sorted(os.listdir(src))}


def _case_dir(workdir: str, i: int, src: dict) -> dict:
    d = os.path.join(workdir, f"c{i}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    files = {}
    for n, p in src.items():
        files[n] = os.path.join(d, n)
        shutil.copy(p, files[n])
    files["dir"] = os.path.join(d, "adir")
    os.makedirs(files["dir"])
    files["fifo"] = os.path.join(d, "fifo")
    os.mkfifo(files["fifo"])
    files["missing"] = os.path.join(d, "missing.out")
    files["zero"] = "/dev/zero"
    files["d"] = d
    return files


def _fill(arg: str, f: dict) -> str:
    """arg with each {name} replaced by the case's fixture path (names hold dots: no str.format)."""
    for k, v in f.items():
        arg = arg.replace("{" + k + "}", v)
    return arg


def _path_value(rng, f: dict) -> str:
    keys = ["model.onnx", "model.engine", "notes.txt", "other.json", "x.bin", "dir", "fifo", "missing", "zero"]
    return f[keys[int(rng.integers(0, len(keys)))]]


def _random_argv(rng, f: dict):
    """(argv, input paths) of a random forgeexec command."""
    inputs = []
    if rng.random() < 0.6:
        src = f["model.onnx"] if rng.random() < 0.8 else _path_value(rng, f)
        argv = [f"--onnx={src}", "--builderOptimizationLevel=0"]
    else:
        src = f["model.engine"] if rng.random() < 0.8 else _path_value(rng, f)
        argv = [f"--loadEngine={src}"]
    inputs.append(src)
    argv += FAST
    for _ in range(int(rng.integers(1, 5))):
        r = rng.random()
        if r < 0.25:
            flag = OUT_FLAGS[int(rng.integers(0, len(OUT_FLAGS)))]
            argv.append(f"{flag}={_path_value(rng, f)}")
        elif r < 0.4:
            flag = ["--shapes", "--minShapes", "--optShapes", "--maxShapes"][int(rng.integers(0, 4))]
            argv.append(f"{flag}={SHAPE_VALUES[int(rng.integers(0, len(SHAPE_VALUES)))]}")
        elif r < 0.5:
            p = f["x.bin"] if rng.random() < 0.5 else _path_value(rng, f)
            argv.append(f"--loadInputs=x:{p}")
            inputs.append(p)
        elif r < 0.65:
            flag = INT_FLAGS[int(rng.integers(0, len(INT_FLAGS)))]
            val = INT_VALUES[int(rng.integers(0, len(INT_VALUES)))]
            if flag in ("--iterations", "--avgRuns", "--sleepTime", "--idleTime") and val.isdigit() and int(val) > 3:
                val = "2"  # keep the run short; huge values are for the parser, not the loop
            argv.append(f"{flag}={val}")
        elif r < 0.75:
            flag = FLOAT_FLAGS[int(rng.integers(0, len(FLOAT_FLAGS)))]
            val = FLOAT_VALUES[int(rng.integers(0, len(FLOAT_VALUES)))]
            if flag in ("--duration", "--warmUp") and val in ("1e308", "inf"):
                val = "-1"
            argv.append(f"{flag}={val}")
        elif r < 0.9:
            argv.append(BOOL_FLAGS[int(rng.integers(0, len(BOOL_FLAGS)))])
        else:
            flag = list(STR_FLAGS)[int(rng.integers(0, len(STR_FLAGS)))]
            argv.append(f"{flag}={STR_FLAGS[flag][int(rng.integers(0, len(STR_FLAGS[flag])))]}")
    return argv, inputs


def _protected(argv, inputs, f: dict):
    """Inputs of the command, and a --timingCacheFile target that holds something else."""
    prot = [p for p in inputs if os.path.isfile(p) and p != "/dev/zero"]
    keep = []
    for a in argv:
        if a.startswith("--timingCacheFile=") and os.path.isfile(a.split("=", 1)[1]):
            prot.append(a.split("=", 1)[1])  # none of the fixtures is a timing cache
        if a.startswith("--saveEngine=") and os.path.isfile(a.split("=", 1)[1]):
            keep.append(a.split("=", 1)[1])
    return sorted(set(prot)), sorted(set(keep) - set(prot))


def fixed(workdir: str, src: dict, start: int):
    """The issue's hand-picked cases: data loss, special files, huge shapes."""
    i = start
    specs = [
        lambda f: [f"--onnx={f['model.onnx']}", "--builderOptimizationLevel=1", f"--timingCacheFile={f['notes.txt']}"],
        lambda f: [f"--onnx={f['model.onnx']}", "--builderOptimizationLevel=1", f"--timingCacheFile={f['other.json']}"],
        lambda f: [f"--onnx={f['model.onnx']}", "--builderOptimizationLevel=1", f"--timingCacheFile={f['model.onnx']}"],
        lambda f: [f"--onnx={f['model.onnx']}", "--builderOptimizationLevel=1",
                   f"--timingCacheFile={f['model.engine']}"],
        lambda f: [f"--onnx={f['model.onnx']}", f"--saveEngine={f['model.onnx']}"],
        lambda f: [f"--loadEngine={f['model.engine']}", f"--exportTimes={f['model.engine']}"],
        lambda f: [f"--onnx={f['model.onnx']}", f"--loadInputs=x:{f['x.bin']}", f"--exportOutput={f['x.bin']}"],
        lambda f: [f"--onnx={f['notes.txt']}", f"--saveEngine={f['model.engine']}"],
        lambda f: [f"--onnx={f['zero']}"], lambda f: [f"--loadEngine={f['zero']}"],
        lambda f: [f"--onnx={f['fifo']}"], lambda f: [f"--loadEngine={f['fifo']}"],
        lambda f: [f"--onnx={f['model.onnx']}", "--shapes=x:1099511627776x3x8x8"],
        lambda f: [f"--onnx={f['model.onnx']}", "--shapes=x:65536x3x4096x4096"],
        lambda f: [f"--onnx={f['model.onnx']}", f"--loadInputs=x:{f['fifo']}"],
    ]
    for spec in specs:
        f = _case_dir(workdir, i, src)
        argv = spec(f) + FAST
        inputs = [a.split("=", 1)[1].split(":", 1)[-1] if a.startswith("--loadInputs") else a.split("=", 1)[1]
                  for a in argv if a.startswith(("--onnx=", "--loadEngine=", "--loadInputs="))]
        prot, keep = _protected(argv, inputs, f)
        yield Case("cli", "fixed", "forgeexec", argv, protected=prot, keep_on_failure=keep, cwd=f["d"])
        i += 1
    for spec, keep in TF_CASES:
        f = _case_dir(workdir, i, src)
        argv = [_fill(a, f) for a in spec.split()]
        yield Case("cli", "tensorforge", "tensorforge", argv, protected=[f[k] for k in keep], cwd=f["d"])
        i += 1
    for key in ("zero", "fifo", "dir", "notes.txt"):
        f = _case_dir(workdir, i, src)
        yield Case("cli", f"inspect_{key}", "inspect", [f[key]], protected=[f[key]] if key == "notes.txt" else [])
        i += 1


def cases(workdir: str, rng, n: int):
    """The fixed cases, then n random forgeexec commands."""
    src = fixtures(workdir)
    yield from fixed(workdir, src, 0)
    for i in range(1000, 1000 + n):
        f = _case_dir(workdir, i, src)
        argv, inputs = _random_argv(rng, f)
        prot, keep = _protected(argv, inputs, f)
        yield Case("cli", "random", "forgeexec", argv, protected=prot, keep_on_failure=keep, cwd=f["d"])
