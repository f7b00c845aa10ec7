"""The genome every arm of every experiment trains is pinned: ``tests/golden/arm_genomes.json`` holds the hashes
that the code before the move of "arm to genome" below sweep/ (commit 4f86565, ``sweep/plan.resolve_genome``)
resolved, and the door that replaced it must give the same networks.

Covered per experiment (on the embedded digits, its default config): every arm and classic of the plan, the
genome a trial of each arm trains (``TrialRunner.genome``), the first sampled points of a design space
(``experiment.pairs``) under every arm, points of a sampled space over ``arch`` and ``knobs.*``, and the
conditional space's table of what each base accepts. Regenerate (only for a deliberate change of networks)
with ``NASPLAY_WRITE_GOLDEN=1 pytest tests/test_arm_genomes.py``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from nasplay.sweep.plan import make_plan
from nasplay.sweep.trial import TrialRunner, TrialSpec

CONF = Path(__file__).resolve().parents[1] / "conf" / "experiment"
EXPERIMENTS = sorted(p.stem for p in CONF.glob("*.yaml"))
GOLDEN = Path(__file__).resolve().parent / "golden" / "arm_genomes.json"
PAIRS = 4  # sampled architectures of a design space checked under each arm


def resolved(compose, name: str, tmp: Path) -> dict:
    plan = make_plan(compose(f"experiment={name}", f"runs_dir={tmp}"))  # the shape from the experiment's data
    g = next(iter(plan.genomes.values()))
    shape = (g.input.channels, g.input.size, g.classes)
    out: dict = {"plan": {arm: g.hash for arm, g in sorted(plan.genomes.items())}}
    dm = SimpleNamespace(channels=shape[0], size=shape[1], num_classes=shape[2])
    runner = TrialRunner(plan, tracker=None)
    trials = {}
    for arm in [*plan.arms, *plan.classics]:
        g = runner.genome(TrialSpec(arm.name, arm.arch, dict(arm.knobs), 0, classic=arm in plan.classics), dm)
        assert g is plan.genomes[arm.name], f"{name}: a trial of {arm.name!r} must train the plan's genome"
        trials[arm.name] = g.hash
    exp, space = plan.cfg.experiment, plan.cfg.sweep.space
    if exp.pairs:  # each sampled architecture under every arm: the arm's knobs with the pair's point
        for i, point in enumerate(plan.sampled_pairs()[:PAIRS]):
            knobs = {k.removeprefix("knobs."): v for k, v in point.items() if k.startswith("knobs.")}
            for arm in plan.arms:
                trials[f"{arm.name} pair={i}"] = runner.genome(
                    TrialSpec(arm.name, arm.arch, {**arm.knobs, **knobs}, 0, pair=i), dm).hash
    elif space and not exp.conditional:  # a sampled space: each listed arch with each end of each knob
        base = plan.arms[0]
        archs = [str(a) for a in space.get("arch", [base.arch])]
        for arch in archs:
            for name_, spec in space.items():
                if not name_.startswith("knobs."):
                    continue
                values = list(spec) if isinstance(spec, (list, tuple)) else [spec["low"], spec["high"]]
                for v in values:
                    knobs = {**base.knobs, name_.removeprefix("knobs."): v}
                    trials[f"{arch} {name_}={v}"] = runner.genome(TrialSpec(f"{arch} {name_}={v}", arch, knobs, 0), dm).hash
    out["trials"] = trials
    if exp.conditional:
        from nasplay.sweep.conditional import allowed

        out["conditional"] = json.loads(json.dumps(allowed(plan.cfg, shape), sort_keys=True, default=str))
    return out


@pytest.mark.slow
def test_every_arm_resolves_to_the_genome_it_resolved_to_before_the_move(compose, tmp_path):
    got = {name: resolved(compose, name, tmp_path) for name in EXPERIMENTS}
    if os.environ.get("NASPLAY_WRITE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert sorted(got) == sorted(want), "an experiment was added or removed: regenerate the golden file"
    for name in EXPERIMENTS:
        assert got[name] == want[name], name
