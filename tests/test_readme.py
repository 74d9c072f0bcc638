"""The English and Chinese READMEs list the same commands, so neither falls behind."""

from __future__ import annotations

import re
from pathlib import Path

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
