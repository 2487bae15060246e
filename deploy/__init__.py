"""Deployment: turn an ONNX artifact into what a target runs.

- :mod:`deploy.build`: OpenVINO IR and TensorRT engines (``tinct build``);
- :mod:`deploy.auto`: ``--precision auto``, the fastest OpenVINO precision that passes its guard here;
- :mod:`deploy.triton`: Triton Inference Server model repositories (``tinct deploy triton``).

No torch: everything starts from an exported ONNX.
"""
