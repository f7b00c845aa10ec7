"""Faults of the storage, with the real parts: a journal whose last record was cut mid-write (cut at every byte of
it), a PostgreSQL server restarted while trials train, and the transient errors the storage calls retry through.
See docs/faults.md."""

from __future__ import annotations

import io
import logging
from collections import Counter
from pathlib import Path

import optuna
import pytest
from rich.console import Console

from nasplay.sweep.runner import run_study
from nasplay.sweep.storage import JOURNAL, make_storage

TINY = ("arch=lenet5_common", "data.limit=240", "data.batch_size=32", "trainer.max_epochs=1", "sweep=grid",
        "experiment.knob=activation", "experiment.values=[relu, tanh]", "experiment.seeds=[0]", "logger=none",
        "progress=false", "sweep.workers=1")
POINTS = Counter({("activation=relu", 0): 1, ("activation=tanh", 0): 1})


def run(cfg, **kw):
    buf = io.StringIO()
    result = run_study(cfg, console=Console(file=buf, width=300), **kw)
    return result, buf.getvalue()


def summary(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state.name, t.params, t.values, t.user_attrs) for t in trials]


@pytest.mark.slow  # a real study, then ~200 journals opened, then one resumed study
def test_a_journal_cut_at_every_byte_of_its_last_record_is_repaired_and_resumes(compose, tmp_path, caplog):
    """kill -9 or a power loss during an append leaves the last record without its end. Each cut: the storage
    opens, the torn bytes are dropped (a copy kept, one line logged), the study loads as it was before that
    write, and the next write lands on a whole journal. Then one cut study resumes to the end."""
    result, _ = run(compose(*TINY, "experiment.name=torn", f"runs_dir={tmp_path}"))
    assert result.counts["COMPLETE"] == 2
    data = (Path(result.study_dir) / JOURNAL).read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1  # where the last record begins
    last = data[start:]
    assert last.endswith(b"\n") and len(last) > 50

    def load(d: Path) -> list[optuna.trial.FrozenTrial]:
        return optuna.load_study(study_name="torn", storage=make_storage(None, d)).get_trials()

    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / JOURNAL).write_bytes(data[:start])
    before = summary(load(whole))  # the study as it was before the last write
    assert before != summary(load(Path(result.study_dir)))

    d = tmp_path / "cut"
    d.mkdir()
    caplog.set_level(logging.WARNING, logger="nasplay.sweep.journal")
    for k in range(len(last)):  # k bytes of the last record made it to the disk (k = 0: none, the journal is whole)
        for p in d.iterdir():
            p.unlink()
        (d / JOURNAL).write_bytes(data[:start + k])
        caplog.clear()
        trials = load(d)
        assert summary(trials) == before, k
        assert (d / JOURNAL).read_bytes() == data[:start], k  # the torn bytes are gone, nothing else
        backups = sorted(d.glob(f"{JOURNAL}.torn-*"))
        lines = [r.getMessage() for r in caplog.records if r.name == "nasplay.sweep.journal"]
        if k == 0:
            assert backups == [] and lines == [], k
            continue
        assert [b.read_bytes() for b in backups] == [data[:start + k]], k  # the journal as it was, kept
        assert len(lines) == 1 and f"({k} bytes without their end" in lines[0] and str(backups[0]) in lines[0], (k, lines)
        # the next write lands on a whole journal (before the repair it fused with the torn bytes into a line
        # that was not JSON, and the study could not be loaded again)
        optuna.load_study(study_name="torn", storage=make_storage(None, d)).set_user_attr("after", k)
        assert optuna.load_study(study_name="torn", storage=make_storage(None, d)).user_attrs["after"] == k
        assert [r.getMessage() for r in caplog.records if r.name == "nasplay.sweep.journal"] == lines  # repaired once

    # One cut study resumed: its last tell was lost, so that trial is RUNNING with an old heartbeat; the resumed
    # run fails it as stale and runs its point again. Every point once, the repair said once.
    study_dir = Path(result.study_dir)
    (study_dir / JOURNAL).write_bytes(data[:start + len(last) // 2])
    caplog.clear()
    again, text = run(compose(*TINY, "experiment.name=torn", f"runs_dir={tmp_path}", "sweep.heartbeat_interval=0.2",
                              "sweep.heartbeat_grace=0.5"))
    assert again.complete and again.ran == 1 and again.problems == [], text
    trials = load(study_dir)
    done = Counter((t.params["arm"], t.params["seed"]) for t in trials if t.state.name == "COMPLETE")
    assert done == POINTS
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"] and trials[2].user_attrs["retry_of"] == 1
    assert len([r for r in caplog.records if r.name == "nasplay.sweep.journal"]) == 1
    assert len(list(study_dir.glob(f"{JOURNAL}.torn-*"))) == 1
