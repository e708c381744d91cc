"""Regenerate the README's results tables from the benchmark result files.

    python benchmarks/update_readme.py

Every block ``<!-- results:NAME -->`` … ``<!-- /results:NAME -->`` in README.md is replaced by the contents of
``benchmarks/results/NAME.md`` (written by the benchmark that produced ``NAME.json``). Blocks whose file does not
exist yet are left as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)", re.S)


def update(readme: Path = ROOT / "README.md", results: Path = ROOT / "benchmarks" / "results") -> list[str]:
    """Rewrite the blocks in place; returns the names of the blocks that were filled."""
    text = readme.read_text()
    filled: list[str] = []

    def fill(match: re.Match) -> str:
        source = results / f"{match['name']}.md"
        if not source.exists():
            return match.group(0)
        filled.append(match["name"])
        return f"{match.group(1)}{source.read_text().rstrip()}\n{match.group(4)}"

    readme.write_text(BLOCK.sub(fill, text))
    return filled


if __name__ == "__main__":
    print("updated README blocks:", ", ".join(update()) or "none")
