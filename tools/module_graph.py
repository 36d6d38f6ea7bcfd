"""The Rust crate's module graph, from its `use` lines, and the rules it keeps.

    python tools/module_graph.py          # prints who uses whom
    python tools/module_graph.py --check  # exits 1, naming each break

Rules (docs/architecture.md, "Modules"):
* the graph between top-level modules has no cycle, and the modules below
  the interfaces know none of them: `server`, `http`, `tls`, `bridge`, `log`,
  `sync` and `memory` use no interface (`asgi`, `rsgi`, `wsgi`, `ws`) and
  not `worker`;
* `http`, `tls` and `memory` know no Python (`bridge`, `log`);
* inside a folder, no two files use each other (directly or in a circle).
"""

from __future__ import annotations

import re
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
INTERFACES = {"asgi", "rsgi", "wsgi", "ws"}
FOUNDATION = {"server", "http", "tls", "bridge", "log", "sync", "memory"}
NO_PYTHON = {
    "http": {"bridge", "log"},
    "tls": {"bridge", "log"},
    "memory": {"bridge", "log"},
}

USE = re.compile(r"\b(crate|super)::(\{[^;]*\}|[a-z_][a-z0-9_]*)", re.S)


def top_module(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def code(path: Path) -> str:
    """The file without its line comments and its `#[cfg(test)]` module:
    tests may reach anywhere."""
    text = path.read_text()
    text = text.split("#[cfg(test)]\nmod tests")[0]
    return re.sub(r"//.*", "", text)


def names(group: str) -> set[str]:
    if group.startswith("{"):
        return {part.split("::")[0].strip() for part in group[1:-1].split(",") if part.strip()}
    return {group}


def reexports(mod_rs: Path) -> dict[str, str]:
    """Names a folder's mod.rs re-exports from its files: name -> file."""
    found: dict[str, str] = {}
    if mod_rs.exists():
        for file, group in re.findall(r"\buse ([a-z_][a-z0-9_]*)::(\{[^;]*\}|\w+);", code(mod_rs)):
            for name in names(group):
                found[name] = file
    return found


def graph() -> tuple[dict[str, set[str]], dict[str, dict[str, set[str]]]]:
    """(top-level module -> modules it uses, folder -> file -> sibling files it uses)."""
    top: dict[str, set[str]] = {}
    folders: dict[str, dict[str, set[str]]] = {}
    for path in sorted(SRC.rglob("*.rs")):
        module = top_module(path)
        top.setdefault(module, set())
        text = code(path)
        in_folder = path.parent != SRC
        siblings = {p.stem for p in path.parent.glob("*.rs")} if in_folder else set()
        exported = reexports(path.parent / "mod.rs") if in_folder else {}
        for root, group in USE.findall(text):
            for name in names(group):
                if root == "crate" and name not in ("self", module):
                    top[module].add(name)
                elif root == "super" and in_folder and path.stem != "mod":
                    # `super::x` from a file below a folder: a sibling file
                    # when x is one, else something the folder's mod.rs has.
                    sibling = name if name in siblings else exported.get(name)
                    if sibling and sibling != path.stem:
                        folders.setdefault(path.parent.name, {}).setdefault(path.stem, set()).add(
                            sibling
                        )
        for name in top[module].copy():
            if not (SRC / f"{name}.rs").exists() and not (SRC / name).is_dir():
                top[module].discard(name)  # an external crate named like a path
    return top, folders


def problems() -> list[str]:
    top, folders = graph()
    found = []
    try:
        list(TopologicalSorter(top).static_order())
    except CycleError as err:
        found.append(f"modules use each other in a circle: {' -> '.join(err.args[1])}")
    for module in FOUNDATION:
        for bad in sorted(top.get(module, set()) & (INTERFACES | {"worker"})):
            found.append(f"{module} uses {bad}: it must not know the interfaces")
    for module, banned in NO_PYTHON.items():
        for bad in sorted(top.get(module, set()) & banned):
            found.append(f"{module} uses {bad}: it must know no Python")
    for folder, files in folders.items():
        try:
            list(TopologicalSorter(files).static_order())
        except CycleError as err:
            found.append(f"files of {folder}/ use each other: {' -> '.join(err.args[1])}")
    return found


def main() -> None:
    if "--check" in sys.argv[1:]:
        found = problems()
        for problem in found:
            print(f"module graph: {problem}", file=sys.stderr)
        sys.exit(1 if found else 0)
    top, folders = graph()
    for module in sorted(top):
        print(f"{module} -> {', '.join(sorted(top[module])) or '(nothing)'}")
    for folder in sorted(folders):
        for file in sorted(folders[folder]):
            print(f"  {folder}/{file} -> {', '.join(sorted(folders[folder][file]))}")


if __name__ == "__main__":
    main()
