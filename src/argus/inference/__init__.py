"""Inference backends: the same tensors in, the same tensors out, whether in-process or on Triton."""
