"""Runs tinylm's CUDA kernels without a GPU: NVRTC compiles them, g++ and threads run them (see harness.py)."""
