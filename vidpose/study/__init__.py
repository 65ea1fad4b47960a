"""Studies: many runs of the trainer, one leaderboard, and the claims checked on it.

``spec`` reads a study definition (``configs/study/<name>.yaml``), ``runner`` plans and runs its
stages (``tools/study.py``), ``leaderboard`` turns run folders into a table of methods x metrics
(``tools/leaderboard.py``, for any runs, not only a study's), ``claims`` checks the papers'
claims on that table, ``plots`` draws it. ``docs/study.md`` describes the claims study.
"""
