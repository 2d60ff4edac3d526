"""The command line's errors: one line naming the wrong value and the known ones, before anything is read from disk."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT
from hetmtl.cli import main

BAD = [  # (argv, what the one line must say)
    (["train", "--suite", "tiny", "--group", "related", "--setting", "no_prior", "--method", "mtl"],
     ["--method 'mtl'", "did you mean 'mtal'?", "known: "]),
    (["train", "--suite", "tiny", "--group", "related", "--setting", "noprior", "--method", "mtal"],
     ["--setting 'noprior'", "did you mean 'no_prior'?"]),
    (["train", "--suite", "tiny", "--group", "related", "--setting", "prior", "--method", "single_task"],
     ["--method 'single_task' runs in setting shared, not 'prior'"]),
    (["train", "--suite", "tiny", "--group", "related", "--setting", "no_prior", "--method", "mtal", "--seed", "7"],
     ["--seed 7", "a seed of suite tiny", "known: 0"]),
    (["train", "--suite", "tiny", "--group", "relatd", "--setting", "no_prior", "--method", "mtal"],
     ["--group 'relatd'", "did you mean 'related'?"]),
    (["runs", "--suite", "demo", "--group", "relatd"], ["--group 'relatd'", "did you mean 'related'?"]),
    (["runs", "--suite", "dmeo"], ["--suite 'dmeo'", "did you mean 'demo'?"]),
    (["table", "--suite", "tiny", "--table", "table9"], ["--table 'table9'", "a table of the catalogue"]),
    (["figure", "--suite", "tiny", "--figure", "fig8"], ["--figure 'fig8'", "did you mean 'fig08_overall'?"]),
    (["prepare", "--suite", "tiny", "--task", "HD", "Typo"], ["--task 'Typo'", "did you mean 'Typographic'?"]),
    (["sweep", "--suite", "tiny", "--sweep", "rhoo", "--group", "related", "--value", "0.4"],
     ["--sweep 'rhoo'", "did you mean 'rho'?"]),
]


@pytest.mark.parametrize(("argv", "says"), BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _ in BAD])
def test_a_wrong_name_is_one_line_naming_it_and_the_known_ones(argv, says, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(argv) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    for text in says:
        assert text in lines[0], (text, lines[0])
    assert out.out == ""


def test_a_wrong_device_is_one_usage_line_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--suite", "tiny", "--group", "related", "--setting", "no_prior", "--method", "mtal",
              "--device", "gpu"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'gpu': auto, cpu, cuda or cuda:N" in err[0], err


def test_lists_take_several_values_after_one_flag_or_the_flag_repeated(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["runs", "--suite", "tiny", "--group", "related", "unrelated"]) == 0
    both = capsys.readouterr().out.splitlines()
    assert main(["runs", "--suite", "tiny", "--group", "related", "--group", "unrelated"]) == 0
    assert capsys.readouterr().out.splitlines() == both
    assert {'"group": "related"' in line for line in both} == {True, False}


def test_a_closed_reader_of_the_output_is_no_error():
    """`hetmtl runs | head -1`: no 'Broken pipe' noise, no traceback."""
    out = subprocess.run(f"{sys.executable} -m hetmtl.cli runs --suite demo | head -1", shell=True, cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                                                              "HETMTL_FORKSERVER": "0"})
    assert out.stdout.count("\n") == 1 and out.stderr == "", out.stderr
