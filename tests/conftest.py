import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


import pytest  # noqa: E402


@pytest.fixture
def one_thread():
    """Tiny networks run many small ops: one torch thread is several times faster than two on a busy
    machine. The setting is global, so put it back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- the experiment engine (conf/, nasplay.sweep): compose the real configs in-process ---------------
from pathlib import Path  # noqa: E402

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"


@pytest.fixture
def compose():
    """``compose(*overrides)``: conf/ composed by Hydra's compose API, as ``python -m nasplay`` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from nasplay.sweep.config import register_configs

    register_configs()

    def _compose(*overrides: str, hydra: bool = False):
        # One process unless a test asks for workers: spawning them costs seconds (the default, auto, is tested apart).
        if not any(o.startswith("sweep.workers") for o in overrides):
            overrides = (*overrides, "sweep.workers=1")
        with initialize_config_dir(str(CONF_DIR), version_base="1.3", job_name="nasplay"):
            return hydra_compose("config", overrides=list(overrides), return_hydra_config=hydra)

    return _compose



# --- a real PostgreSQL server (scripts/postgres.sh starts one; scripts/test.sh exports its URL) -------
@pytest.fixture
def postgres_url():
    """A PostgreSQL URL whose tables live in a fresh schema of their own, dropped after the test.

    Skips, saying what is missing, without a server; fails instead when NASPLAY_REQUIRE_POSTGRES=1 (CI).
    """
    import uuid

    url = os.environ.get("NASPLAY_TEST_POSTGRES_URL", "")
    required = os.environ.get("NASPLAY_REQUIRE_POSTGRES") == "1"

    def missing(why: str):
        msg = f"PostgreSQL needed: {why} (bash scripts/postgres.sh starts a server and prints its URL for NASPLAY_TEST_POSTGRES_URL)"
        pytest.fail(msg) if required else pytest.skip(msg)

    if not url:
        missing("NASPLAY_TEST_POSTGRES_URL is not set")
    import sqlalchemy as sa

    from nasplay.sweep.storage import rdb_url
    from nasplay.track.secrets import mask_text

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(rdb_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
    except Exception as e:
        missing(f"cannot reach {mask_text(url)}: {mask_text(str(e).splitlines()[0])}")
    sep = "&" if "?" in url else "?"
    try:
        yield f"{url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()
