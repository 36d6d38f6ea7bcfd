"""Prints the options table of docs/cli.md from diorite's options table
(python/diorite/options.py), so the docs say what the code does:

    python tools/options_table.py > /tmp/t && (edit docs/cli.md)

`tests/test_config.py` checks that docs/cli.md holds exactly this table.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python"))

from diorite.options import GROUPS, OPTIONS  # noqa: E402


def table() -> str:
    lines = []
    for group in GROUPS:
        lines.append(f"\n**{group}**\n")
        lines.append("| option | environment | default | meaning |")
        lines.append("|---|---|---|---|")
        for option in (o for o in OPTIONS if o.group == group):
            flags = ", ".join(f"`{f}`" for f in option.flags)
            if option.kind == "flag":
                flags += f" / `--no-{option.flags[0].lstrip('-')}`"
                default = "on" if option.default else "off"
            elif option.default in (None, [], ""):
                default = ""
            elif isinstance(option.default, list):
                default = f"`{','.join(map(str, option.default))}`"
            else:
                default = f"`{option.default}`"
            if option.choices:
                flags += " `{" + ",".join(option.choices) + "}`"
            elif option.metavar:
                flags += f" `{option.metavar}`"
            lines.append(f"| {flags} | `{option.env}` | {default} | {option.help} |")
    return "\n".join(lines).strip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(table())
