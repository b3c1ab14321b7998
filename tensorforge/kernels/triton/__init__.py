"""The triton tactic source: generated and templated Triton kernels (CUDA only).

Importing this package must not import triton itself at module level for code generation;
launchers import triton lazily."""
