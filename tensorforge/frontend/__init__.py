"""Frontend: ONNX -> ir.Graph with the project's own shape/dtype/value inference."""
from __future__ import annotations

from ..ir import Graph
from .infer import infer_graph, infer_node
from .onnx_loader import load_model_proto, to_graph
from .shape_tensors import mark_shape_tensors
from .support import check_supported, unsupported_nodes


def load(model) -> Graph:
    """Load a path, 'zoo:NAME' or ModelProto into an inferred ir.Graph."""
    proto = load_model_proto(model)
    check_supported(proto)  # every unsupported node at once, before any inference
    g = to_graph(proto)
    mark_shape_tensors(g)  # int inputs feeding shape parameters get symbolic values
    return infer_graph(g)


__all__ = ["load", "load_model_proto", "to_graph", "infer_graph", "infer_node", "check_supported", "unsupported_nodes"]
