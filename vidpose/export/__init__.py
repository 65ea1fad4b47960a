"""ONNX export of clip models and refiners (``tools/export.py``, docs/export.md).

:mod:`~vidpose.export.onnx_export` writes a graph with its input contract
(:mod:`~vidpose.export.contract`); :mod:`~vidpose.export.runtime` runs it with onnxruntime
behind the interface the evaluator calls. onnx and onnxruntime are the optional ``export`` extra.
"""
