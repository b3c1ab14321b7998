"""Debugging tools over the builder (`tensorforge debug ...`): which layers need higher precision."""
