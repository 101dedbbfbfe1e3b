"""The CLI describes itself: help without arguments, --version, a description, an
example and help on every flag of every command."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator

import pytest

from receiver.cli import build_parser, main


def leaves(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every command that runs something, with its words."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, sub in subs[0].choices.items():
        yield from leaves(sub, (*path, name))


def test_no_arguments_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`mta-receiver` alone prints the help and a way to start, exit 0."""
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: mta-receiver")
    assert "mta-receiver trigger" in out


def test_version() -> None:
    """`--version` names the installed version."""
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "--version"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    assert done.stdout.strip() == "mta-receiver 0.1.0"


def test_every_command_has_description_example_and_flag_help() -> None:
    """Each command: a one-line description, an example in its help, help on each flag."""
    found = dict(leaves(build_parser()))
    assert ("trigger",) in found
    assert ("events", "list") in found
    problems = []
    for path, parser in found.items():
        name = " ".join(path)
        if path == ("fake-mta",):  # its own parser: checked below
            continue
        if not parser.description or "\n" in parser.description.strip():
            problems.append(f"{name}: no one-line description")
        if not parser.epilog or f"mta-receiver {name}" not in parser.epilog:
            problems.append(f"{name}: no example")
        for action in parser._actions:
            if not isinstance(action, argparse._HelpAction) and not action.help:
                problems.append(f"{name}: {action.dest} has no help")
        assert "example:" in parser.format_help()
    assert not problems, "\n".join(problems)


def test_fake_mta_help(capsys: pytest.CaptureFixture[str]) -> None:
    """`fake-mta --help` answers with its own usage."""
    with pytest.raises(SystemExit) as exited:
        main(["fake-mta", "--help"])
    assert exited.value.code == 0
    assert "mta-receiver fake-mta" in capsys.readouterr().out
