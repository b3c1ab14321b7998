"""Frontend: ONNX -> ir.Graph with the project's own shape/dtype/value inference."""
from __future__ import annotations

from ..ir import Graph
from .infer import infer_graph, infer_node
from .onnx_loader import check_names, load_model_proto, to_graph
from .shape_tensors import mark_shape_tensors
from .support import check_supported, unsupported_nodes


def load(model, static_shapes: dict | None = None) -> Graph:
    """Load a path, 'zoo:NAME' or ModelProto into an inferred ir.Graph.

    static_shapes {input: shape}: dims the build pins (every profile min == max) replace the declared
    unknown dims before inference, so conditions on shapes are known at build time."""
    proto = load_model_proto(model)
    check_names(proto.graph)  # corrupt files: names that are not text
    check_supported(proto)  # every unsupported node of the main graph at once, before any inference
    g = to_graph(proto)
    for v in g.inputs:
        fixed = (static_shapes or {}).get(v.name)
        if fixed is not None and len(fixed) == len(v.shape):
            v.shape = tuple(int(f) if not isinstance(d, int) else d for d, f in zip(v.shape, fixed))
    mark_shape_tensors(g)  # int inputs feeding shape parameters get symbolic values
    return infer_graph(g)


__all__ = ["load", "load_model_proto", "to_graph", "infer_graph", "infer_node", "check_supported", "unsupported_nodes"]
