"""Frontend: ONNX -> ir.Graph with the project's own shape/dtype/value inference."""
from __future__ import annotations

from ..ir import Graph
from .infer import infer_graph, infer_node
from .onnx_loader import load_model_proto, to_graph


def load(model) -> Graph:
    """Load a path, 'zoo:NAME' or ModelProto into an inferred ir.Graph."""
    return infer_graph(to_graph(load_model_proto(model)))


__all__ = ["load", "load_model_proto", "to_graph", "infer_graph", "infer_node"]
