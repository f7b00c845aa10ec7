import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --- the experiment engine (conf/, nasplay.sweep): compose the real configs in-process ---------------
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def compose():
    """``compose(*overrides)``: conf/ composed by Hydra's compose API, as ``python -m nasplay`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nasplay.sweep.config import register_configs

    register_configs()

    def _compose(*overrides: str, hydra: bool = False):
        with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="nasplay"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra)

    return _compose

