"""The ``nasplay`` console command: list, describe, --json, --help, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nasplay.cli import main
from nasplay.complexity import complexity
from nasplay.space.zoo import get_genome, list_genomes


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "list")
    assert rc == 0
    lines = [line for line in out.splitlines() if line.strip() and not line.startswith(f"{len(list_genomes())} networks")]
    assert [line.split()[1] if line.startswith("*") else line.split()[0] for line in lines] == list_genomes()
    assert sum(line.startswith("*") for line in lines) == 10
    assert "* resnet50" in out and "He et al. 2015" in out


def test_list_glob_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "list", "vgg*", "--json")
    assert rc == 0
    rows = json.loads(out)
    assert [r["name"] for r in rows] == ["vgg11", "vgg13", "vgg16", "vgg19"]
    assert rows[2] == {"name": "vgg16", "year": 2014, "canonical": True, "reference": "torchvision:vgg16",
                       "paper": rows[2]["paper"]}


def test_describe(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "describe", "inception_v1")
    c = complexity("inception_v1")
    assert rc == 0
    assert out.startswith(f"inception_v1  (genome {get_genome('inception_v1').hash})")
    assert "3x224x224" in out
    assert f"{c.params:,}  ({c.params - c.params_aux:,} without aux heads)" in out
    assert f"{c.flops:,}" in out and "depth        22" in out and "aux heads    2" in out
    assert "conv 57" in out


def test_describe_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "describe", "resnet50", "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["name"] == "resnet50" and d["hash"] == get_genome("resnet50").hash
    assert (d["params"], d["params_without_aux"], d["flops"], d["depth"]) == (25_557_032, 25_557_032, 8_178_368_512, 50)
    assert d["input"] == [3, 224, 224] and d["layers"]["conv"] == 53 and d["aux_heads"] == 0
    assert [s["blocks"] for s in d["stages"]] == [3, 4, 6, 3]


def test_describe_a_genome_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    g = get_genome("lenet5").replace(name="my_lenet")
    for path, text in ((tmp_path / "g.yaml", g.to_yaml()), (tmp_path / "g.json", g.to_json())):
        path.write_text(text)
        rc, out, _ = run(capsys, "describe", str(path), "--json")
        assert rc == 0
        d = json.loads(out)
        assert (d["name"], d["hash"], d["params"]) == ("my_lenet", g.hash, 60_000)


def test_describe_a_bad_genome_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    d = get_genome("resnet18").to_dict()
    d["stages"][0]["blocks"][0]["branches"][0]["ops"][0]["groups"] = 3
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    rc, out, err = run(capsys, "describe", str(path))
    assert rc == 2 and out == ""
    assert err.startswith("error: stages[0].blocks[0].branches[0].ops[0].groups: 3 must divide")


def test_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run(capsys, "describe", "resnet05")
    assert rc == 2 and out == ""
    assert "unknown network 'resnet05'; did you mean resnet50" in err


@pytest.mark.parametrize("argv", [["--help"], ["list", "--help"], ["describe", "--help"]])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: nasplay")
    assert "examples:" in out
    if argv[0] == "describe":
        assert "knob=value" in out and "--json" in out
    if argv[0] == "list":
        assert "pattern" in out and "--json" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys)
    assert rc == 0 and "usage: nasplay" in out and "describe" in out


def test_describe_with_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run(capsys, "describe", "resnet18", "input=32", "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["input"] == [3, 32, 32] and d["params"] < complexity("resnet18").params
    rc, out, err = run(capsys, "describe", "resnet18", "skip=sideways")
    assert rc == 2 and "skip" in err and "identity" in err


def test_console_script_subprocess() -> None:
    """The installed entry point runs, and listing does not pay for importing torch."""
    beside = Path(sys.executable).parent / "nasplay"  # this environment's, before any other on PATH
    exe = str(beside) if beside.exists() else shutil.which("nasplay")
    assert exe, "the nasplay console script is not installed"
    p = subprocess.run([exe, "list", "resnext*"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "resnext50_32x4d" in p.stdout and "resnext101_32x8d" in p.stdout and "resnet50 " not in p.stdout
    p = subprocess.run([exe, "describe", "nosuchnet"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "unknown network 'nosuchnet'" in p.stderr
    code = "import sys; from nasplay.cli import main; main(['list']); main(['--help']) if 0 else None; " \
           "assert 'torch' not in sys.modules, 'nasplay list imported torch'"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr


def test_overrides_and_deletions_run_the_experiment_not_a_subcommand() -> None:
    """`nasplay experiment=X`, `nasplay ~trainer.gradient_clip_val` and Hydra's flags go to the experiment runner;
    command names and `--help` go to the subcommands."""
    from nasplay.cli import is_hydra_command
    for argv in (["experiment=ablate_skip"], ["+trainer.x=1"], ["~trainer.gradient_clip_val"], ["--cfg", "job"], ["-m"]):
        assert is_hydra_command(argv), argv
    for argv in ([], ["list"], ["report", "runs/x"], ["--help"], ["-h"], ["describe", "resnet18", "skip=identity"]):
        assert not is_hydra_command(argv), argv
