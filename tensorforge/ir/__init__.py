"""Intermediate representation: Graph, Node, Value, symbolic dims and invariants."""
from .graph import Graph, Node, Value
from .verify import GraphInvariantError, verify

__all__ = ["Graph", "Node", "Value", "verify", "GraphInvariantError"]
