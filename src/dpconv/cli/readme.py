"""Regenerate the format table in README.md: ``python -m dpconv.cli.readme [README.md]``."""

from __future__ import annotations

import re
import sys

from dpconv.cli.builtin_commands import formats_table


def update(path: str = "README.md") -> bool:
    """Rewrite the table between the ``formats`` markers; True when the file changed."""
    with open(path) as fh:
        text = fh.read()
    table = formats_table(markdown=True, builtin_only=True)
    new = re.sub(
        r"(<!-- formats:start -->\n).*?(<!-- formats:end -->)",
        lambda m: m.group(1) + table + "\n" + m.group(2),
        text,
        flags=re.S,
    )
    if new != text:
        with open(path, "w") as fh:
            fh.write(new)
    return new != text


if __name__ == "__main__":
    print("updated" if update(*sys.argv[1:]) else "up to date")
