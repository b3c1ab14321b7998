"""Write a Triton Inference Server model repository (Python backend) for an engine file."""
from __future__ import annotations

import os
import re
import shutil

from ..errors import TensorforgeError
from .ray_deployment import DEFAULT_WAIT_MS, engine_view
from .spec import ServeSpec

ENGINE_FILE = "model.engine"
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "bfloat16": "TYPE_BF16",
                "float64": "TYPE_FP64", "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32",
                "int64": "TYPE_INT64", "uint8": "TYPE_UINT8", "uint16": "TYPE_UINT16",
                "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64", "bool": "TYPE_BOOL"}


def preferred_sizes(spec: ServeSpec) -> list:
    """The profile's opt batch and max batch: the sizes the engine was tuned for and its largest."""
    return sorted({b for b in (spec.opt_batch, spec.max_batch) if spec.min_batch <= b <= spec.max_batch})


def _tensor(s, batched: bool) -> str:
    if s.dtype not in TRITON_TYPES:
        raise TensorforgeError(f"'{s.name}' has dtype {s.dtype}, which Triton's Python backend cannot carry")
    dims = list(s.shape[1:] if batched else s.shape) or [1]
    return (f'  {{\n    name: "{s.name}"\n    data_type: {TRITON_TYPES[s.dtype]}\n'
            f'    dims: [ {", ".join(str(d) for d in dims)} ]\n  }}')


def config_pbtxt(name: str, spec: ServeSpec, device: str, instances: int, max_wait_ms: float,
                 tensorforge_root: str, cpu_threads: int = 1) -> str:
    """config.pbtxt text: I/O from the engine (batch dim stripped when batched), batching, instances."""
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {spec.max_batch if spec.batched else 0}",
             "input [", ",\n".join(_tensor(s, spec.batched) for s in spec.inputs), "]",
             "output [", ",\n".join(_tensor(s, spec.batched) for s in spec.outputs), "]"]
    if spec.batched:
        sizes = ", ".join(str(b) for b in preferred_sizes(spec))
        lines += ["dynamic_batching {", f"  preferred_batch_size: [ {sizes} ]",
                  f"  max_queue_delay_microseconds: {int(round(max_wait_ms * 1e3))}", "}"]
    # KIND_GPU without a gpus list: Triton places `count` instances on every visible GPU
    kind = "KIND_GPU" if device == "cuda" else "KIND_CPU"
    lines += ["instance_group [", f"  {{\n    count: {instances}\n    kind: {kind}\n  }}", "]"]
    params = {"engine_file": ENGINE_FILE, "tensorforge_root": tensorforge_root}
    if device != "cuda":  # torch threads per CPU instance (parallelism comes from instances)
        params["cpu_threads"] = str(cpu_threads)
    lines += [f'parameters {{\n  key: "{k}"\n  value: {{ string_value: "{v}" }}\n}}' for k, v in params.items()]
    return "\n".join(lines) + "\n"


def export_triton(engine_path: str, repo_dir: str, model_name: str | None = None, max_batch: int | None = None,
                  max_wait_ms: float | None = None, instances: int = 1, overwrite: bool = False,
                  cpu_threads: int = 1) -> str:
    """REPO_DIR/NAME/{config.pbtxt, 1/model.py, 1/model.engine}; returns REPO_DIR/NAME."""
    spec, device = engine_view(engine_path, max_batch)
    name = model_name or re.sub(r"[^A-Za-z0-9_.-]", "_", os.path.splitext(os.path.basename(engine_path))[0])
    model_dir = os.path.join(repo_dir, name)
    if os.path.exists(repo_dir) and not os.path.isdir(repo_dir):
        raise TensorforgeError(f"{repo_dir} exists and is not a directory (the model repository to write)")
    if os.path.lexists(model_dir):
        if not overwrite:
            raise TensorforgeError(f"{model_dir} exists (pass --overwrite to replace it)")
        _check_replaceable(model_dir, engine_path)
        shutil.rmtree(model_dir)
    version = os.path.join(model_dir, "1")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    wait = DEFAULT_WAIT_MS if max_wait_ms is None else float(max_wait_ms)
    try:
        os.makedirs(version)
        with open(os.path.join(model_dir, "config.pbtxt"), "w") as f:
            f.write(config_pbtxt(name, spec, device, instances, wait, root, cpu_threads))
        shutil.copyfile(os.path.join(os.path.dirname(os.path.abspath(__file__)), "triton_model.py"),
                        os.path.join(version, "model.py"))
        shutil.copyfile(engine_path, os.path.join(version, ENGINE_FILE))
    except OSError as e:
        raise TensorforgeError(f"cannot write {model_dir}: {e.strerror or e}") from None
    return model_dir


def _check_replaceable(model_dir: str, engine_path: str) -> None:
    """--overwrite deletes model_dir: only a model folder this command wrote (a real folder with a
    config.pbtxt), and never the one holding the engine being exported."""
    if os.path.islink(model_dir) or not os.path.isdir(model_dir) or \
            not os.path.isfile(os.path.join(model_dir, "config.pbtxt")):
        raise TensorforgeError(f"{model_dir} exists and is not a Triton model folder (no config.pbtxt); "
                               "refusing to delete it")
    real = os.path.realpath(model_dir)
    if os.path.commonpath([os.path.realpath(engine_path), real]) == real:
        raise TensorforgeError(f"the engine {engine_path} lies in {model_dir}, which --overwrite would delete; "
                               "copy the engine elsewhere first")
