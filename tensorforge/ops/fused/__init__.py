"""Internal fused ops (`fused.*`) built by the optimizer: epilogue layers, attention, reductions."""
