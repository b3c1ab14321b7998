"""Internal fused ops (`fused.*`) built by the optimizer: pointwise DAGs, layers with an epilogue, attention, fused reductions."""
