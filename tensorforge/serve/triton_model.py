"""Triton Python-backend model for a tensorforge engine (copied as `1/model.py` by export-triton).

Loads the engine once per instance (on the instance's GPU, or the CPU) and runs each batch the
dynamic batcher hands over in one engine call; a request that fails fails alone."""
import json
import os
import sys

import triton_python_backend_utils as pb_utils  # provided by Triton's Python backend stub


def _import_runner():
    """tensorforge from the stub's Python, else from where export-triton found it."""
    try:
        from tensorforge.serve.runner import EngineFailure, Runner
    except ImportError:
        root = _PARAMS.get("tensorforge_root")
        if not root or root in sys.path:
            raise
        sys.path.append(root)
        from tensorforge.serve.runner import EngineFailure, Runner
    return EngineFailure, Runner


_PARAMS = {}


class TritonPythonModel:
    """One instance: one engine, one execution context."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        _PARAMS.update({k: v["string_value"] for k, v in config.get("parameters", {}).items()})
        self.failure_type, runner_cls = _import_runner()
        if "cpu_threads" in _PARAMS:  # several threads per instance spin against each other and Triton
            import torch
            torch.set_num_threads(int(_PARAMS["cpu_threads"]))
        from tensorforge.serve.spec import RequestError, np_dtype
        self.request_error = RequestError
        path = os.path.join(args["model_repository"], args["model_version"], _PARAMS["engine_file"])
        gpu = args.get("model_instance_kind") == "GPU"
        device = f"cuda:{args['model_instance_device_id']}" if gpu else None
        self.runner = runner_cls(path, device=device)
        self.inputs = [(s.name, np_dtype(s)) for s in self.runner.spec.inputs]
        self.outputs = [s.name for s in self.runner.spec.outputs]

    def execute(self, requests):
        """All requests of one dynamic batch -> one engine call (merged on dim 0, split back)."""
        responses = [None] * len(requests)
        feeds, where = [], []
        for i, req in enumerate(requests):
            try:
                feed = {}
                for name, _ in self.inputs:
                    t = pb_utils.get_input_tensor_by_name(req, name)
                    if t is None:
                        raise self.request_error(f"missing input '{name}'")
                    feed[name] = _array(t)
                self.runner.validate(feed)
            except self.request_error as e:
                responses[i] = _error(str(e), pb_utils.TritonError.INVALID_ARG)
                continue
            feeds.append(feed)
            where.append(i)
        for i, r in zip(where, self.runner.run_many(feeds) if feeds else []):
            if isinstance(r, Exception):
                responses[i] = _error(f"engine failure: {r}", pb_utils.TritonError.INTERNAL)
            else:
                responses[i] = pb_utils.InferenceResponse(output_tensors=[_tensor(n, r[n]) for n in self.outputs])
        return responses

    def finalize(self):
        self.runner = None


# Tensors cross the stub through DLPack, not NumPy: the stub of Triton <= 2.51 (pybind11 2.10, as nvidia-pytriton
# 0.7 bundles it) reads NumPy's dtype sizes with NumPy 1's struct layout, and under NumPy 2 it took them as 0:
# every output then went out with binary_data_size 0 (session 11 on the H200, numpy 2.5.2: all answers empty)
# and as_numpy() gave inputs with zero strides (python_backend PR #384, fixed in r24.11).
def _array(t):
    """An input tensor as a NumPy array (a view of Triton's buffer while execute runs)."""
    import torch
    return torch.from_dlpack(t.to_dlpack()).numpy()


def _tensor(name, a):
    """An output tensor from a NumPy array."""
    import numpy as np
    import torch
    from torch.utils.dlpack import to_dlpack
    return pb_utils.Tensor.from_dlpack(name, to_dlpack(torch.from_numpy(np.ascontiguousarray(a))))


def _error(message, code):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message.splitlines()[0], code))
