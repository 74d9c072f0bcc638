"""The English and Chinese READMEs list the same commands and sections, so neither falls
behind; every command the README and the results pages give still parses."""

from __future__ import annotations

import argparse
import re
import runpy
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMMAND = re.compile(r"^(python|make|pip|tensorboard|torchrun|grep|git)\b")


def commands(readme: Path) -> list[str]:
    """Every command line of the README's code blocks, continuation lines joined."""
    found, in_block, pending = [], False, ""
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_block = not in_block
            continue
        if not in_block:
            continue
        text = pending + line.split("  #")[0].strip() if pending else line.split("  #")[0].strip()
        if text.endswith("\\"):
            pending = text[:-1].rstrip() + " "
            continue
        pending = ""
        if COMMAND.match(text):
            found.append(" ".join(text.split()))
    return found


def test_both_readmes_list_the_same_commands():
    english = commands(ROOT / "README.md")
    chinese = commands(ROOT / "README.zh-CN.md")
    assert len(english) >= 20
    assert sorted(set(english) - set(chinese)) == []
    assert sorted(set(chinese) - set(english)) == []


def test_the_command_reader_joins_continued_lines(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("text\n```\n# a comment\npython -m a --x 1 \\\n    --y 2\nmake test   # runs\n```\n"
                      "python -m not_in_a_block\n", encoding="utf-8")
    assert commands(readme) == ["python -m a --x 1 --y 2", "make test"]


def test_both_readmes_have_the_same_sections_and_the_english_one_stays_short():
    def sections(readme: Path) -> int:
        return sum(line.startswith("## ") for line in readme.read_text(encoding="utf-8").splitlines())
    assert sections(ROOT / "README.md") == sections(ROOT / "README.zh-CN.md") >= 10
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 400


# A command: `python -m landmarks.X ...` or `python PATH.py ...`.
DOC_COMMAND = re.compile(r"^python (-m landmarks\.\w+|(?:scripts|docs/experiments)/[\w/]+\.py)(.*)$")


def documented_commands() -> list[tuple[str, str, str]]:
    """(page, program, arguments) of every command in the README and docs/*.md: the lines of
    code blocks (continued lines joined) and the inline code spans (wrapped lines joined)."""
    found = []
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        blocks = re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)
        prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
        lines = [line for block in blocks for line in re.sub(r"\\\n\s*", " ", block).splitlines()]
        lines += [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
        for line in lines:
            match = DOC_COMMAND.match(line.split("  #")[0].strip())
            if match:
                found.append((page.name, match.group(1), match.group(2).split(" > ")[0].split(" | ")[0].strip()))
    return found


class Parsed(Exception):
    """Raised once a script's parser has read its arguments: nothing more of it runs."""


def parse_only(monkeypatch, program: str, argv: list[str]) -> None:
    """Parse ``argv`` with ``program``'s own parser, running none of its work."""
    if program.startswith("-m "):
        module = {"landmarks.detector": "landmarks.detector", "landmarks.data": "landmarks.commands.lists"}[program[3:]]
        __import__(module, fromlist=["build_parser"]).build_parser().parse_args(argv)
        return
    real = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        real(self, args, namespace)
        raise Parsed

    with monkeypatch.context() as patch, pytest.raises(Parsed):
        patch.syspath_prepend(str((ROOT / program).parent))  # as `python PATH.py` puts it first
        patch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
        runpy.run_path(str(ROOT / program))["main"](argv)


def test_every_documented_command_still_parses(monkeypatch):
    commands = documented_commands()
    assert len(commands) >= 100
    programs = {program for _, program, _ in commands}
    assert {"-m landmarks.detector", "-m landmarks.data", "scripts/bench_pictures.py"} <= programs
    failed = []
    for page, program, arguments in commands:
        if any(mark in arguments for mark in ("$", "<", "|", "[", "...", "…")):
            continue  # a template: shell variables, placeholders, alternatives, optional parts
        try:
            parse_only(monkeypatch, program, shlex.split(arguments))
        except SystemExit as error:
            if error.code == 0:  # --help
                continue
            failed.append(f"{page}: python {program} {arguments} ({error})")
    assert not failed, "\n".join(failed)
