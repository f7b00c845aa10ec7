"""A study's report in three parts: :mod:`~nasplay.report.load` (the study directory), :mod:`~nasplay.report.analyse`
(tables, tests and verdicts as a typed report) and :mod:`~nasplay.report.write` (figures, diagrams, report.md and
report.json, W&B); :mod:`~nasplay.report.search` for a search of the classics' space. Architecture pictures are
:mod:`nasplay.draw`'s.
"""
