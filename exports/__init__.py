"""ONNX export, int8 quantisation, the torch-free runtime and the HTTP service.

Leaf package. `exports.runtime` and `exports.serve` import only onnxruntime, tokenizers, numpy
and aiohttp: never torch or transformers. Keep this file import-free.
"""
