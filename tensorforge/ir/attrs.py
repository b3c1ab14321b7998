"""Attribute (de)serialization for the engine header: small tensors are inlined as JSON, subgraphs
(If/Loop/Scan bodies) become nested JSON graphs."""
from __future__ import annotations

import torch


def to_json(a):
    """Make an attribute JSON-able; tensors become {"__tensor__": {dtype, shape, data}}."""
    if type(a).__name__ == "Graph":  # a control-flow body (ir.Graph)
        from .subgraph import to_json as graph_json
        return {"__graph__": graph_json(a)}
    if isinstance(a, torch.Tensor):
        from ..dtypes import from_torch
        data = a.reshape(-1).float().tolist() if a.dtype in (torch.bfloat16,) or str(a.dtype).startswith(
            "torch.float8") else a.reshape(-1).tolist()
        return {"__tensor__": {"dtype": from_torch(a.dtype), "shape": list(a.shape), "data": data}}
    return a


def from_json(a):
    """Inverse of to_json."""
    if isinstance(a, dict) and "__graph__" in a:
        from .subgraph import from_json as graph_value
        return graph_value(a["__graph__"])
    if isinstance(a, dict) and "__tensor__" in a:
        from ..dtypes import to_torch
        t = a["__tensor__"]
        dt = to_torch(t["dtype"])
        src = torch.tensor(t["data"], dtype=torch.float32 if dt in (torch.bfloat16,) or str(dt).startswith(
            "torch.float8") else dt)
        return src.to(dt).reshape(t["shape"])
    return a
