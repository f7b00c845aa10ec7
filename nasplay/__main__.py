"""``python -m nasplay [GROUP=OPTION ...] [KEY=VALUE ...]``: run (or resume) an experiment's study.

Hydra composes ``conf/`` into a :class:`nasplay.sweep.config.NasplayConfig`; this is the only place that
touches the config object, everything below receives plain checked values.

Hydra's own flags work as Hydra users type them: ``--multirun`` / ``-m`` runs one study per job (a job
whose settings change what a trial computes gets its own study, named after its overrides), any
launcher (``hydra/launcher=submitit_slurm``) included; ``--shell-completion`` (``-sc``) completes
overrides (``eval "$(nasplay -sc install=bash)"``: the ``nasplay`` command takes the same overrides).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from typing import Any

# OpenMP threads that spin while waiting make training several times slower on a shared or busy CPU
# (measured: the smoke study 13 s passive, 80 s spinning, on 2 loaded cores). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from nasplay.cli.errors import COMMANDS, bad_input  # noqa: E402
from nasplay.private_api import hydra_args_parser  # noqa: E402
from nasplay.resources import project_dir  # noqa: E402
from nasplay.sweep.config import register_configs  # noqa: E402
from nasplay.track.secrets import mask_text  # noqa: E402

CONF_DIR = project_dir("conf", "NASPLAY_CONF_DIR")
SWEPT = "NASPLAY_SWEPT"  # hydra.job.env_set key: the keys a multirun sweeps, as the command line gave them

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _run(cfg: DictConfig) -> None:
    import logging

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from nasplay.experiment import run_experiment
    from nasplay.sweep.faults import log_traceback, one_line, study_dir_of

    logging.captureWarnings(True)  # per-trial warnings go to <study dir>/nasplay.log, not between the trial lines

    made = None
    try:
        overrides, made = job_setup(cfg)
        result = run_experiment(cfg, overrides=overrides)
    except ValueError as e:  # a bad value found by the checks: say which, without a traceback
        _remove_if_unused(made)  # a study that could not start leaves no folder behind
        sys.exit(bad_input(mask_text(str(e))))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to continue the study", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # one line; the traceback (Hydra would print the overrides: a password) to the study's log
        import traceback

        log = log_traceback(study_dir_of(cfg), f"the command stopped: {one_line(e)}", traceback.format_exc())
        print(f"error: {one_line(e)}" + (f" (traceback in {log})" if log else ""), file=sys.stderr)
        if log is None:
            print(mask_text(traceback.format_exc()), file=sys.stderr)
        sys.exit(1)
    if result.problems:  # its lines are printed: a worker died, or every trial of the run failed
        if HydraConfig.get().mode == RunMode.MULTIRUN and _UNFINISHED is not None:
            _UNFINISHED.extend(result.problems)  # the other jobs of the multirun still run; main() exits non-zero
        else:
            sys.exit(1)


# The causes of the jobs of an in-process multirun that did not finish their work (main() sets it: the
# jobs that a launcher runs in other processes exit non-zero themselves).
_UNFINISHED: list[str] | None = None


def job_setup(cfg: DictConfig) -> tuple[list[str], Any]:
    """This Hydra job's study: its name (a multirun job of its own settings gets its own), its directory
    (created here, so an unusable ``runs_dir`` is one line, not a traceback) and its log file; returns the
    job's overrides (secrets masked) for ``study.json`` and the study directory if this call made it."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    overrides = [mask_text(o) for o in hc.overrides.task]
    if hc.mode == RunMode.MULTIRUN:
        name = multirun_study(str(cfg.study), list(hc.overrides.task), (hc.job.env_set.get(SWEPT) or "").split())
        if name != cfg.study:
            cfg.study = name
        # Hydra's record of the sweep: the overrides of each study are in its study.json instead
        Path(hc.sweep.dir, "multirun.yaml").unlink(missing_ok=True)
    from nasplay.space.load import genome_label  # arch=net.yaml: the experiment and study are named after its stem

    study_dir = Path(str(cfg.runs_dir)) / genome_label(str(cfg.experiment.name)) / genome_label(str(cfg.study))
    made = None
    for d in (*reversed(study_dir.parents), study_dir):  # the first folder of the path that this job makes
        if not d.exists():
            made = (study_dir, d)
            break
    try:
        study_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"runs_dir={cfg.runs_dir!r}: cannot create the study directory {study_dir} ({e.strerror or e})") from None
    _log_to(study_dir / "nasplay.log")
    return overrides, made


def _remove_if_unused(made: Any) -> None:
    """Remove the study directory (and the empty folders above it) this job made, when only its log is in it."""
    import logging

    if made is None:
        return
    study_dir, top = made
    if not study_dir.is_dir() or {p.name for p in study_dir.iterdir()} - {"nasplay.log"}:
        return
    logging.shutdown()
    for p in study_dir.iterdir():
        p.unlink()
    d = study_dir
    while True:
        try:
            d.rmdir()
        except OSError:  # not empty: something else lives there
            return
        if d == top:
            return
        d = d.parent


def multirun_study(study: str, task: list[str], swept: list[str]) -> str:
    """The study of a multirun job: ``study`` itself unless the job sweeps keys that change what a trial
    computes; then ``<study>-<key>=<value>,...`` over those keys (not when ``study=`` is given)."""
    from nasplay.sweep.plan import is_free_key

    pairs = [(o.split("=", 1)[0].lstrip("+~"), o.split("=", 1)[1] if "=" in o else "") for o in task]
    if any(k == "study" for k, _ in pairs):
        return study
    named = ("experiment", "experiment.name")  # the experiment is the folder above the study already
    parts = [f"{k}={v}" for k, v in pairs
             if k in swept and k not in named and not is_free_key(k) and not k.startswith(("hydra.", "hydra/"))]
    if not parts:
        return study
    return re.sub(r"[/\s]+", "_", f"{study}-{','.join(parts)}")


def _log_to(path: Any) -> None:
    """Point the job's log file (conf/hydra/job_logging, opened lazily) at ``path``."""
    import logging

    for h in {h for lg in (logging.getLogger(), *map(logging.getLogger, ("lightning.pytorch", "lightning.fabric", "py.warnings")))
              for h in lg.handlers}:
        if isinstance(h, logging.FileHandler) and h.baseFilename != str(path):
            if h.stream is not None:
                h.close()
                h.stream = None  # type: ignore[assignment]
            h.baseFilename = str(path)


def swept_keys(args: list[str]) -> list[str]:
    """The keys a ``--multirun`` command line sweeps (``a=1,2``, ``b=range(3)``, ``c=glob(*)``)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):  # Hydra says it, once
            parsed = hydra_args_parser().parse_args(args)
        if not parsed.multirun:
            return []
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except (SystemExit, Exception):  # noqa: BLE001 - Hydra reports a bad override itself
        return []
    return [o.key_or_group for o in overrides if o.is_sweep_override() and not o.key_or_group.startswith(("hydra.", "hydra/"))]


def completion_args(args: list[str]) -> list[str]:
    """``-sc``/``--shell-completion`` as Hydra's completion scripts call it, for ``nasplay`` and ``python -m nasplay``.

    ``install=SHELL`` installs completion for the ``nasplay`` command (a shell completes commands, and
    ``python`` is not ours); ``query=SHELL`` answers for a ``$COMP_LINE`` that starts ``python -m nasplay``
    or ``nasplay``; ``query='experiment=abl'`` (not a shell) completes that text.
    """
    if not args or args[0] not in ("-sc", "--shell-completion"):
        return args
    rest = list(args[1:])
    for i, a in enumerate(rest):
        key, _, value = a.partition("=")
        if key in ("install", "uninstall"):
            sys.argv[0] = "nasplay"  # Hydra's script binds completion to the program's name
        elif key == "query" and value not in ("bash", "zsh", "fish"):
            os.environ["COMP_LINE"] = f"nasplay {value}"
            os.environ.setdefault("COMP_POINT", str(len(os.environ["COMP_LINE"])))
            rest[i] = "query=bash"
    line = os.environ.get("COMP_LINE")
    if line is not None:  # Hydra strips `python script.py` or `app`, not `python -m nasplay`
        os.environ["COMP_LINE"] = re.sub(r"^\s*\S*python[\d.]*\s+-m\s+nasplay\b", "nasplay", line)
    return [args[0], *rest]


def genome_file_args(args: list[str]) -> list[str]:
    """``arch=PATH`` with PATH a genome file (``.yaml``/``.yml``/``.json`` that exists): ``arch.name=ABSOLUTE PATH``, since
    Hydra reads ``arch=`` as an option of conf/arch/; the experiment (and study) are named after the file's stem."""
    from pathlib import Path

    from nasplay.space.load import is_genome_file

    out = []
    for a in args:
        key, eq, value = a.partition("=")
        if eq and key == "arch" and is_genome_file(value) and Path(value).is_file():
            a = f"arch.name={Path(value).resolve()}"
        out.append(a)
    return out


def main(argv: list[str] | None = None) -> None:
    """Check the overrides' keys against the schema (naming what is allowed), then hand over to Hydra."""
    from nasplay.space.plugins import PluginError, load_plugins
    from nasplay.sweep.overrides import check_overrides

    args = genome_file_args(completion_args(sys.argv[1:] if argv is None else list(argv)))
    try:
        load_plugins()  # the coordinator's vocabulary; each worker loads the same (nasplay.sweep.workers)
    except PluginError as e:
        sys.exit(bad_input(str(e)))
    if args and "=" not in args[0] and not args[0].startswith(("-", "~")):
        hint = (f"`nasplay {args[0]} ...` runs that command" if args[0] in COMMANDS else
                f"write KEY=VALUE{f' (did you mean {args[0]}={args[1]}?)' if len(args) > 1 and '=' not in args[1] else ''}")
        sys.exit(bad_input(f"{args[0]!r} is not an override (KEY=VALUE or GROUP=OPTION): {hint}"))
    problem = check_overrides(args)
    if problem:
        sys.exit(bad_input(problem))
    if not CONF_DIR.is_dir():
        sys.exit(bad_input(f"the config directory {CONF_DIR} is missing (set NASPLAY_CONF_DIR to nasplay's conf/)"))
    swept = swept_keys(args)
    if swept:  # every job (in this process or one a launcher started elsewhere) learns what the multirun sweeps
        args.append(f"+hydra.job.env_set.{SWEPT}='{' '.join(swept)}'")
    sys.argv[1:] = args
    global _UNFINISHED
    _UNFINISHED = []
    _run()
    if _UNFINISHED:
        sys.exit(1)


if __name__ == "__main__":
    main()
