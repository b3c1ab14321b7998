"""forgeexec: the trtexec-compatible benchmarking CLI (TensorRT 10.x flags, loop, report and exports)."""
