"""The study runner: Hydra config -> Optuna study of tracked Lightning trials (``python -m nasplay``)."""

from __future__ import annotations

from typing import Any


def run_study(cfg: Any, **kwargs: Any) -> Any:
    """Run or resume the study a composed config describes (see :func:`nasplay.sweep.runner.run_study`)."""
    from nasplay.sweep.runner import run_study as _run

    return _run(cfg, **kwargs)
