"""``nasplay report STUDY_DIR ...``: tables, statistics and figures of studies (numpy, scipy and matplotlib load
only when a report is asked for)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="tables, statistics and figures of one or several studies",
        description="Write report.md, report.json and PNG/SVG figures of a study directory (runs/<experiment>/<study>/): "
                    "each arm's mean, std, 95% CI (inside the metric's range), n and minimum detectable effect; each arm "
                    "against the baseline on the experiment's pre-stated outcomes (effect size, Welch's t and permutation "
                    "tests, Holm within each outcome, equivalence against the stated margin, one of four outcomes: better, "
                    "worse, equivalent, inconclusive; time-to-target outcomes as censored); learning curves; accuracy vs "
                    "FLOPs with the Pareto front; error EDFs for design-space (edf_*) studies. Several directories also get "
                    "comparison.md side by side.",
        epilog="examples:\n  nasplay report runs/ablate_skip/ablate_skip\n  nasplay report runs/ablate_skip/* --out reports/ --json\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("study_dirs", nargs="+", metavar="STUDY_DIR", help="a study directory holding results.csv")
    p.add_argument("--out", default=None, help="write the files here instead of into the study directory")
    p.add_argument("--json", action="store_true", help="print the machine-readable report")
    p.add_argument("--metric", default=None,
                   help="the primary outcome (default: experiment.outcomes.primary, else test/acc, val/acc_best, val/acc)")
    p.add_argument("--baseline", default=None, help="the arm the others are compared with (default: experiment.baseline)")
    p.add_argument("--test", choices=("exact", "welch", "permutation"), default=None,
                   help="the test behind the verdicts (default: the study's report.test; exact: the exact permutation p "
                        "up to 10 seeds per arm, Welch above)")
    p.add_argument("--adjust", choices=("holm", "none"), default=None,
                   help="multiple comparisons within each outcome (default: the study's report.adjust, holm)")
    p.add_argument("--margin", type=float, default=None,
                   help="equivalence margin of the primary outcome, in its points (default: report.margin, else experiment.outcomes)")
    p.add_argument("--alpha", type=float, default=None, help="significance level (default: the study's report.alpha, 0.05)")
    p.add_argument("--no-figures", action="store_true", help="tables only")
    p.add_argument("--wandb", action="store_true", help="also log the report as a W&B run (offline unless WANDB_MODE=online)")
    p.add_argument("--anytime", action="store_true", help="compare searchers instead: each directory is one run (seed) of a "
                   "search; anytime curves of the best accuracy against trials, compute and wall time (median, IQR over runs)")
    p.set_defaults(func=run_cli)


def run_cli(args: argparse.Namespace) -> int:
    """Write the report(s) of ``args.study_dirs``; print a summary, or JSON with ``--json``."""
    kwargs = {"metric": args.metric, "baseline": args.baseline, "test": args.test, "adjust": args.adjust, "margin": args.margin,
              "alpha": args.alpha, "figures": not args.no_figures,
              "diagrams": not args.no_figures, "wandb": args.wandb}
    # numpy and scipy (and matplotlib for the figures) load when a report is asked for, not with `nasplay --help`
    from nasplay.report.search import anytime, render_anytime, write_search_report
    from nasplay.report.write import compare_studies, to_finite, write_report

    if args.anytime:
        result = anytime(args.study_dirs, args.out, metric=args.metric, figures=not args.no_figures)
        print(json.dumps(to_finite(result), indent=2) if args.json else render_anytime(result) + f"anytime: {result['path']}")
        return 0
    if len(args.study_dirs) == 1:
        _, written = write_report(args.study_dirs[0], args.out, **kwargs)
        report = written.to_dict()
        if (Path(args.study_dirs[0]) / "space.json").exists():  # a search of the classics' space (nasplay.sweep.conditional)
            report["search_report"] = str(write_search_report(args.study_dirs[0], args.out))
        reports, comparison = [report], None
    else:
        comparison, written_all = compare_studies(args.study_dirs, args.out, **kwargs)
        reports = [r.to_dict() for r in written_all]
    if args.json:
        doc = reports[0] if comparison is None else {"studies": reports, "comparison": str(comparison)}
        print(json.dumps(to_finite(doc), indent=2))
        return 0
    for r in reports:
        print(f"{r['experiment']}/{r['study']}: {r['metric']}, baseline {r['baseline']}")
        s = r["scale"]
        for a in r["arms"]:
            ci = f" [{a['ci_low'] * s:.2f}, {a['ci_high'] * s:.2f}]" if math.isfinite(a["ci_low"]) else ""
            print(f"  {a['arm']:<24} {a['mean'] * s:8.2f}{ci}  n={a['n']}")
        for c in r["comparisons"]:
            print(f"  - {c['arm']}: {c['outcome']} — {c['verdict']}")
        print(f"  report: {r['report_path']}")
    if comparison is not None:
        print(f"comparison: {comparison}")
    return 0
