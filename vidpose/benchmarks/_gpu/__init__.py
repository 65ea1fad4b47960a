"""The checks behind ``tools/gpu_check.py``, one module per area.

:mod:`vidpose.benchmarks.gpu_check` lists them with their criteria and budgets.

- :mod:`.context`: what every check receives (:class:`~.context.Context`) and returns
  (:class:`~.context.Outcome`);
- :mod:`.experiments`: the methods found in ``configs/exp`` and their composed configs;
- :mod:`.training`: a few real trainer steps of one method;
- :mod:`.kernels`: deformable convolution, targets and decoding, one implementation vs another;
- :mod:`.launch`: ``torchrun`` training, evaluation and resume;
- :mod:`.speed`: the GPU goals of ``docs/benchmarks.md``;
- :mod:`.report`: the machine and the JSON and markdown reports.

The leading underscore keeps this package out of ``tools/benchmark.py``'s subcommands.
"""
