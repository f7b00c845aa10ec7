"""``python -m nasplay [GROUP=OPTION ...] [KEY=VALUE ...]``: run (or resume) an experiment's study.

Hydra composes ``conf/`` into a :class:`nasplay.sweep.config.NasplayConfig`; this is the only place that
touches the config object, everything below receives plain checked values.
"""

from __future__ import annotations

import os
import sys

# OpenMP threads that spin while waiting make training several times slower on a shared or busy CPU
# (measured: the smoke study 13 s passive, 80 s spinning, on 2 loaded cores). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from nasplay.resources import project_dir  # noqa: E402
from nasplay.sweep.config import register_configs  # noqa: E402
from nasplay.track.secrets import mask_text  # noqa: E402

CONF_DIR = project_dir("conf", "NASPLAY_CONF_DIR")

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _run(cfg: DictConfig) -> None:
    import logging

    from nasplay.experiment import run_experiment

    logging.captureWarnings(True)  # per-trial warnings go to <study dir>/nasplay.log, not between the trial lines

    try:
        run_experiment(cfg)
    except ValueError as e:  # a bad value found by the checks: say which, without a traceback
        print(f"error: {mask_text(str(e))}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue the study", file=sys.stderr)
        sys.exit(130)
    except Exception:  # Hydra would print the overrides, which may hold a storage password
        import traceback

        print(mask_text(traceback.format_exc()), file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    """Check the overrides' keys against the schema (naming what is allowed), then hand over to Hydra."""
    from nasplay.sweep.overrides import check_overrides

    args = sys.argv[1:] if argv is None else argv
    problem = check_overrides(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        sys.exit(2)
    if not CONF_DIR.is_dir():
        print(f"error: the config directory {CONF_DIR} is missing (set NASPLAY_CONF_DIR to nasplay's conf/)", file=sys.stderr)
        sys.exit(2)
    _run()


if __name__ == "__main__":
    main()
