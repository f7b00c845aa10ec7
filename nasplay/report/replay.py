"""Searchers replayed on a tabulated space (issue 21; NAS-Bench-201 / NATS-Bench's method): ``nasplay replay TABLE``.

A table (:mod:`nasplay.sweep.table`, made by ``scripts/build_table.py``) holds every architecture of a subspace trained
with a few seeds. A searcher (random, TPE, NSGA-II, evolution: the samplers of ``sweep=``, built as a study of the
classics' space builds them) runs its define-by-run space against the table: a proposal the knobs refuse is told to
it as infeasible and costs nothing (as the refusal-free ask does); a trained one is looked up: the validation
accuracy of one of its seeds (drawn) is what the searcher sees, the recorded train time is what it costs. Each run's
incumbent (the best validation accuracy so far) is judged by its mean test accuracy over the table's seeds, as
regret against the table's best architecture. Over many seeds per searcher: anytime curves (regret against trained
trials and against train time, median and interquartile range), the probability that a run beats a random-search
run (with a bootstrap interval over the runs), and the final regret.

From the full table, the importance of each innovation (fANOVA and MDI over all its architectures: the ground truth
that a study's sampled importances estimate) and the split-half stability of that ranking as the number of
architectures grows, measured.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

SEARCHERS = ("random", "tpe", "nsga2", "evolution")
# The searchers' settings on a table (a few hundred architectures, runs of tens of trials).
OPTIONS: dict[str, dict[str, Any]] = {"nsga2": {"population_size": 10}, "evolution": {"population_size": 10, "sample_size": 3}}
CONSTRAINTS = "constraints"


class Table:
    """A table's space and results, indexed for lookups."""

    def __init__(self, doc: dict[str, Any]):
        from nasplay.sweep.table import combo_key

        self.doc = doc
        self.key = combo_key
        self.bases: list[str] = list(doc["space"]["bases"])
        self.knobs: dict[str, dict[str, list[Any]]] = doc["space"]["knobs"]
        self.combos: dict[str, str | None] = doc["space"]["combos"]
        self.results: dict[str, dict[str, dict[str, Any]]] = {}
        self.arch: dict[str, dict[str, Any]] = {}
        for a in doc["architectures"]:
            seeds = {s: r for s, r in (a.get("seeds") or {}).items() if r.get("val_acc") and _finite(r.get("test_acc"))}
            if seeds:
                self.results[a["hash"]] = seeds
                self.arch[a["hash"]] = a
        if not self.results:
            raise ValueError("the table has no trained architecture yet: build it with scripts/build_table.py")
        self.test = {h: float(np.mean([r["test_acc"] for r in s.values()])) for h, s in self.results.items()}
        self.best = max(self.test.values())

    def lookup(self, arch: str, labels: dict[str, Any]) -> str | None:
        """The genome hash of a combination, ``None`` when the knobs refuse it or the table lacks its results."""
        h = self.combos.get(self.key(arch, labels))
        return h if h in self.results else None


def make_searcher(name: str, seed: int) -> Any:
    """Searcher ``name``'s sampler, as ``sweep=NAME`` builds it for a conditional space (single objective)."""
    from nasplay.sweep.config import SAMPLERS, SweepConfig
    from nasplay.sweep.samplers import make_sampler

    if name not in SAMPLERS or name == "grid":
        raise ValueError(f"--searchers: unknown searcher {name!r}; allowed: {[s for s in SAMPLERS if s != 'grid']}")
    sweep = SweepConfig(sampler=name, n_trials=50, objectives=["val/acc"], seed=seed, options=dict(OPTIONS.get(name, {})))
    return make_sampler(sweep.check(), conditional=True)


def replay_run(table: Table, searcher: str | Callable[[int], Any], seed: int, trials: int, max_refused: int = 10_000) -> dict[str, Any]:
    """One search of ``trials`` trained architectures on ``table``; per trained trial its cost and the incumbent's regret."""
    import optuna

    sampler = searcher(seed) if callable(searcher) else make_searcher(searcher, seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    rng = np.random.default_rng(seed + 7_919)  # which seed's result a query sees
    cost, regret, found = [], [], []
    best_val, incumbent, spent, refused = -math.inf, None, 0.0, 0
    while len(cost) < trials:
        t = study.ask()
        arch = t.suggest_categorical("arch", table.bases)
        labels = {k: t.suggest_categorical(f"{arch}.{k}", list(v)) for k, v in table.knobs[arch].items()}
        h = table.lookup(arch, labels)
        if h is None:
            study._storage.set_trial_system_attr(t._trial_id, CONSTRAINTS, [1.0])
            study.tell(t, 0.0)
            refused += 1
            if refused > max_refused:
                raise ValueError(f"replay: {searcher} proposed {refused} refused architectures in a row; the table's space looks empty")
            continue
        seeds = sorted(table.results[h])
        r = table.results[h][seeds[int(rng.integers(len(seeds)))]]
        val = float(r["val_acc"][-1])
        study._storage.set_trial_system_attr(t._trial_id, CONSTRAINTS, [0.0])
        study.tell(t, val)
        spent += float(r.get("train_time") or 0.0)
        if val > best_val:
            best_val, incumbent = val, h
        cost.append(spent)
        regret.append(table.best - table.test[incumbent])
        found.append(h)
    return {"cost": np.array(cost), "regret": np.array(regret), "refused": refused, "found": found}


def band(curves: list[tuple[np.ndarray, np.ndarray]], grid: np.ndarray) -> dict[str, list[float]]:
    """Median and interquartile range of step functions (x, y) read at ``grid`` (NaN before a run's first point)."""
    ys = []
    for x, y in curves:
        idx = np.searchsorted(x, grid, side="right") - 1
        ys.append(np.where(idx >= 0, y[np.clip(idx, 0, None)], np.nan))
    a = np.array(ys)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return {"x": grid.tolist(), "median": np.nanmedian(a, axis=0).tolist(),
                    "q25": np.nanpercentile(a, 25, axis=0).tolist(), "q75": np.nanpercentile(a, 75, axis=0).tolist()}


def p_beats(mine: np.ndarray, theirs: np.ndarray, boot: int = 1000, seed: int = 0) -> dict[str, float]:
    """P(a run of mine ends with lower regret than a run of theirs), ties half, with a 95% bootstrap interval over runs."""
    def p(a: np.ndarray, b: np.ndarray) -> float:
        d = a[:, None] - b[None, :]
        return float(((d < 0).sum() + 0.5 * (d == 0).sum()) / d.size)

    rng = np.random.default_rng(seed)
    est = p(mine, theirs)
    draws = [p(rng.choice(mine, len(mine)), rng.choice(theirs, len(theirs))) for _ in range(boot)]
    return {"p": est, "lo": float(np.percentile(draws, 2.5)), "hi": float(np.percentile(draws, 97.5))}


def replay(table: Table, searchers: list[str], seeds: int, trials: int,
           extra: dict[str, Callable[[int], Any]] | None = None) -> dict[str, Any]:
    """Every searcher for ``seeds`` runs of ``trials`` trained architectures; curves, P(beats random), final regret."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for who in [*searchers, *(extra or {})]:
        make = (extra or {}).get(who, who)
        runs[who] = [replay_run(table, make, s, trials) for s in range(seeds)]
    max_cost = max(float(r["cost"][-1]) for rs in runs.values() for r in rs)
    cost_grid = np.geomspace(max(min(float(r["cost"][0]) for rs in runs.values() for r in rs), 1e-6), max(max_cost, 1e-6), 60)
    out: dict[str, Any] = {"table_best": table.best, "architectures": len(table.results), "seeds": seeds, "trials": trials,
                           "searchers": {}}
    finals = {who: np.array([r["regret"][-1] for r in rs]) for who, rs in runs.items()}
    for who, rs in runs.items():
        steps = np.arange(1, trials + 1, dtype=float)
        out["searchers"][who] = {
            "by_trials": band([(steps, r["regret"]) for r in rs], steps),
            "by_cost": band([(r["cost"], r["regret"]) for r in rs], cost_grid),
            "final_regret": {"mean": float(finals[who].mean()), "median": float(np.median(finals[who])),
                             "q25": float(np.percentile(finals[who], 25)), "q75": float(np.percentile(finals[who], 75))},
            "found_best": float(np.mean(finals[who] == 0)),
            "refused_per_run": float(np.mean([r["refused"] for r in rs])),
            "p_beats_random": p_beats(finals[who], finals["random"]) if "random" in finals and who != "random" else None}
    return out


def table_importances(table: Table, *, seeds: int = 5, bootstrap: int = 20, splits: int = 10) -> dict[str, Any]:
    """fANOVA / MDI importance of each knob (and the base) for the mean test accuracy over every architecture of the
    table, with the split-half stability of the ranking measured as the halves grow."""
    from nasplay.report.search import importances

    rows = []
    for h, a in table.arch.items():
        row = {"arch": a["arch"], "param.arch": a["arch"], "test/acc": table.test[h]}
        row.update({f"param.{a['arch']}.{k}": v for k, v in a["labels"].items()})
        rows.append(row)
    return importances(rows, "test/acc", seeds=seeds, bootstrap=bootstrap, splits=splits)


def table_summary(table: Table, draws: int = 2_000, seed: int = 0) -> dict[str, Any]:
    """What the table itself says, to read a searcher's regret against: how many architectures trained (mean test
    accuracy above chance by 3 binomial SEs of the test set), how well one seed ranks the architectures as another
    does (Spearman and Kendall over the architectures with two seeds), the best architecture and each base's, and the
    regret of an exhaustive search: every architecture trained, the best by one drawn seed's validation accuracy
    kept (the floor a searcher that sees one seed cannot go below on average), over ``draws`` draws of the seeds."""
    from scipy.stats import kendalltau, spearmanr

    from nasplay.report.stats import chance_threshold
    from nasplay.train.config import DataConfig

    budget = table.doc.get("budget") or {}
    classes = int((table.doc.get("input") or [0, 0, 10])[-1])
    n_test = budget.get("data.clutter_test") or (DataConfig.clutter_test if budget.get("data") == "clutter" else None)
    thr = chance_threshold(classes, n_test)
    hashes = list(table.results)
    pairs = np.array([[table.results[h][s]["test_acc"] for s in sorted(table.results[h])[:2]]
                      for h in hashes if len(table.results[h]) >= 2])
    agree: dict[str, Any] = {"architectures": len(pairs)}
    if len(pairs) >= 3:
        agree.update(spearman=float(spearmanr(pairs[:, 0], pairs[:, 1]).statistic),
                     kendall=float(kendalltau(pairs[:, 0], pairs[:, 1]).statistic),
                     mean_abs_diff=float(np.mean(np.abs(pairs[:, 0] - pairs[:, 1]))))
        above = (pairs > thr).all(axis=1)
        if above.sum() >= 3:
            agree["trained_spearman"] = float(spearmanr(pairs[above, 0], pairs[above, 1]).statistic)
            agree["trained_architectures"] = int(above.sum())
    rng = np.random.default_rng(seed)
    vals = [[float(r["val_acc"][-1]) for r in table.results[h].values()] for h in hashes]
    regrets = []
    for _ in range(draws):
        seen = np.array([v[int(rng.integers(len(v)))] for v in vals])
        regrets.append(table.best - table.test[hashes[int(np.argmax(seen))]])
    best = max(hashes, key=table.test.get)
    bases: dict[str, dict[str, Any]] = {}
    for h in hashes:
        b = bases.setdefault(table.arch[h]["arch"], {"architectures": 0, "trained": 0, "best": -math.inf, "best_arm": None})
        b["architectures"] += 1
        b["trained"] += int(table.test[h] > thr)
        if table.test[h] > b["best"]:
            b["best"], b["best_arm"] = table.test[h], table.arch[h]["arm"]
    return {"architectures": len(hashes), "trainings": sum(len(s) for s in table.results.values()),
            "chance_threshold": thr, "trained": sum(b["trained"] for b in bases.values()),
            "best": {"arm": table.arch[best]["arm"], "test_acc": table.best,
                     "seeds": {s: r["test_acc"] for s, r in table.results[best].items()}},
            "seed_agreement": agree, "bases": bases,
            "exhaustive": {"mean_regret": float(np.mean(regrets)), "found_best": float(np.mean(np.array(regrets) == 0)),
                           "draws": draws}}


def render(rep: dict[str, Any]) -> str:
    lines = [f"# Searchers replayed on the table ({rep['architectures']} architectures)", "",
             f"{rep['seeds']} runs of {rep['trials']} trained architectures per searcher; regret = the table's best mean "
             f"test accuracy ({100 * rep['table_best']:.2f}%) minus the incumbent's (the best validation accuracy found so far).", "",
             "| searcher | final regret (pts), median [IQR] | mean | runs that found the best | refused per run | "
             "P(beats random) [95% CI] |", "|---|---|---|---|---|---|"]
    for who, s in rep["searchers"].items():
        f = s["final_regret"]
        p = s["p_beats_random"]
        pb = f"{p['p']:.2f} [{p['lo']:.2f}, {p['hi']:.2f}]" if p else "—"
        lines.append(f"| {who} | {100 * f['median']:.2f} [{100 * f['q25']:.2f}, {100 * f['q75']:.2f}] | {100 * f['mean']:.2f} | "
                     f"{100 * s['found_best']:.0f}% | {s['refused_per_run']:.1f} | {pb} |")
    if t := rep.get("table"):
        a, ex, b = t["seed_agreement"], t["exhaustive"], t["best"]
        lines += ["", "## The table", "",
                  f"{t['architectures']} architectures, {t['trainings']} trainings; {t['trained']} architectures trained "
                  f"(mean test accuracy above chance by 3 binomial SEs: {100 * t['chance_threshold']:.1f}%). "
                  f"Best: {b['arm']}, {100 * b['test_acc']:.2f}% (seeds: "
                  + ", ".join(f"{100 * v:.1f}%" for v in b["seeds"].values()) + ")."]
        if "spearman" in a:
            lines += ["", f"Seed against seed ({a['architectures']} architectures with two): Spearman {a['spearman']:.2f}, "
                          f"Kendall {a['kendall']:.2f}, mean |difference| {100 * a['mean_abs_diff']:.1f} points"
                      + (f"; among the {a['trained_architectures']} whose seeds both trained, Spearman "
                         f"{a['trained_spearman']:.2f}" if "trained_spearman" in a else "") + "."]
        lines += ["", f"Exhaustive search (all {t['architectures']} trained, the best by one seed's validation accuracy "
                      f"kept): regret {100 * ex['mean_regret']:.2f} points on average, the best found in "
                      f"{100 * ex['found_best']:.0f}% of {ex['draws']} draws of the seeds.", "",
                  "| base | architectures | trained | best mean test acc. (%) | its knobs |", "|---|---|---|---|---|"]
        lines += [f"| {k} | {v['architectures']} | {v['trained']} | {100 * v['best']:.1f} | {v['best_arm']} |"
                  for k, v in t["bases"].items()]
    imp = rep.get("importance")
    if imp and imp.get("evaluators"):
        lines += ["", "## Importance of each innovation over the whole table", "", "| knob | fANOVA | MDI |", "|---|---|---|"]
        fa, mdi = imp["evaluators"]["fanova"]["importance"], imp["evaluators"]["mdi"]["importance"]
        for k in imp["evaluators"]["fanova"]["ranking"]:
            lines.append(f"| {k} | {fa[k]['mean']:.3f} | {mdi[k]['mean']:.3f} |")
        curve = imp.get("stability", {}).get("curve", [])
        if curve:
            lines += ["", "Split-half stability (Spearman rho of the fANOVA rankings of two disjoint halves):", "",
                      "| per half | rho (mean) |", "|---|---|"]
            lines += [f"| {c['per_half']} | {c['rho_mean']:.2f} |" for c in curve]
    return "\n".join(lines) + "\n"


def write_replay(rep: dict[str, Any], out: str | os.PathLike, figures: bool = True) -> Path:
    """replay.md, replay.json and (with ``figures``) replay.png in ``out``."""
    from nasplay.report.write import to_finite

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps(to_finite(rep), indent=1, default=str))
    (out / "replay.md").write_text(render(rep))
    if figures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for who, s in rep["searchers"].items():
            for ax, key in zip(axes, ("by_trials", "by_cost")):
                b = s[key]
                x, m = np.array(b["x"]), 100 * np.array(b["median"], dtype=float)
                line, = ax.plot(x, m, label=who)
                ax.fill_between(x, 100 * np.array(b["q25"], dtype=float), 100 * np.array(b["q75"], dtype=float),
                                color=line.get_color(), alpha=0.2)
        axes[0].set_xlabel("architectures trained")
        axes[1].set_xlabel("train time (s)")
        axes[1].set_xscale("log")
        for ax in axes:
            ax.set_ylabel("regret (test acc. points)")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(out / "replay.png", dpi=120)
        plt.close(fig)
    return out / "replay.md"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
