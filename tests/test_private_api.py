"""nasplay.private_api reads two libraries' private corners (no public API does the job): these tests fail loudly
when Hydra or Lightning change what it relies on."""

from __future__ import annotations

import inspect


def test_lightning_trainer_args_read_from_the_source_equal_the_signature():
    import lightning.pytorch as pl

    from nasplay.private_api import lightning_trainer_args

    got = lightning_trainer_args()
    assert got == ["self", *inspect.signature(pl.Trainer).parameters], (
        "Lightning's Trainer.__init__ moved or changed: update nasplay.private_api.lightning_trainer_args")
    assert {"max_epochs", "accumulate_grad_batches", "val_check_interval", "callbacks"} <= set(got)


def test_the_trainer_schema_has_a_field_for_every_trainer_argument():
    import dataclasses

    from nasplay.private_api import lightning_trainer_args
    from nasplay.train.config import NASPLAY_SETS, TrainerConfig

    fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    assert set(lightning_trainer_args()) - set(NASPLAY_SETS) <= fields


def test_hydra_args_parser_parses_hydras_flags_as_nasplay_reads_them():
    from nasplay.private_api import hydra_args_parser

    p = hydra_args_parser().parse_args(["-m", "experiment=ablate_skip", "arch.knobs.width=0.125,0.25"])
    assert p.multirun is True and p.overrides == ["experiment=ablate_skip", "arch.knobs.width=0.125,0.25"]
    p = hydra_args_parser().parse_args(["a=1"])
    assert p.multirun is False and p.overrides == ["a=1"] and p.info is None and not p.shell_completion
    p = hydra_args_parser().parse_args(["-sc", "install=bash"])
    assert p.shell_completion and p.overrides == ["install=bash"]
    assert hydra_args_parser().parse_args(["--info", "config"]).info == "config"


def test_optunas_study_storage_trial_id_and_rdb_cache_are_where_nasplay_reads_them(tmp_path):
    import optuna

    from nasplay.private_api import cached_rdb, study_storage, trial_id

    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")
    assert type(optuna.storages.get_storage(rdb)) is type(cached_rdb(rdb)), (
        "Optuna no longer caches an RDB storage as nasplay.private_api.cached_rdb does: update it")
    study = optuna.create_study(storage=cached_rdb(rdb))
    assert study_storage(study) is study._storage
    trial = study.ask()
    study_storage(study).set_trial_user_attr(trial_id(trial), "k", 1)
    (frozen,) = study.get_trials()
    assert trial_id(frozen) == trial_id(trial) and frozen.user_attrs == {"k": 1}
