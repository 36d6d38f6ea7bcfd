"""`_diorite.pyi` describes the extension as built: the same names, and
the same parameters where the extension states them."""

import ast
import inspect
from pathlib import Path

import diorite
from diorite import _diorite

STUB = Path(diorite.__file__).with_name("_diorite.pyi")


def stub_tree() -> ast.Module:
    return ast.parse(STUB.read_text())


def test_the_stub_names_what_the_extension_has():
    names = set()
    for node in stub_tree().body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            names.add(node.target.id)
    public = {n for n in dir(_diorite) if not n.startswith("_")} | {"__version__"}
    assert names == public
    assert STUB.with_name("py.typed").exists()


def test_stub_signatures_match_the_extension():
    classes = {n.name: n for n in stub_tree().body if isinstance(n, ast.ClassDef)}
    checked = 0
    for name, node in classes.items():
        for item in node.body:
            if not isinstance(item, ast.FunctionDef) or item.name.startswith("__"):
                if not (isinstance(item, ast.FunctionDef) and item.name == "__init__"):
                    continue
            target = getattr(_diorite, name)
            method = target if item.name == "__init__" else getattr(target, item.name)
            try:
                actual = inspect.signature(method)
            except (TypeError, ValueError):
                continue
            args = item.args
            stub = [a.arg for a in args.posonlyargs + args.args + args.kwonlyargs]
            real = [p for p in actual.parameters if p not in ("self", "slf")]
            assert stub[1:] == real, f"{name}.{item.name}: stub {stub[1:]} != {real}"
            checked += 1
    assert checked >= 10
