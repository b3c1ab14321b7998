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
                    feed[name] = t.as_numpy()
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
                responses[i] = pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(n, r[n]) for n in self.outputs])
        return responses

    def finalize(self):
        self.runner = None


def _error(message, code):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message.splitlines()[0], code))
