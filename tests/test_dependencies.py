"""The dependency rule (shared/DESIGN.md), checked from the source: every import statement, lazy ones inside
functions included, and ``importlib.import_module`` / ``__import__`` calls with a literal name.

- ``inference`` imports nothing else from the repository (a serving box has no training requirements);
- ``demo`` imports ``inference`` only;
- nothing imports ``demo``; nothing but the tests imports ``tests``;
- the developer tools in ``tools/`` (benchmarks, build scripts) are imported by nobody (the served packages least of
  all), with one named exception: ``training.gpu_check``, itself a developer tool (the GPU path proven on a lent
  machine), runs the benchmarks' measurement (:data:`EXCEPTIONS`);
- any other folder of Python files (``examples/``, ``model_cards/``, …) may import the libraries, not ``demo``,
  ``tests`` or ``tools``.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("inference", "training", "export", "demo", "tools", "tests")
ALLOWED = {  # package → the other repository packages it may import
    "inference": set(),
    "demo": {"inference"},
    "training": {"inference"},
    "export": {"inference", "training"},
    "tools": {"inference", "training", "export"},
    "tests": {"inference", "training", "export", "demo", "tools"},
}
EXCEPTIONS = {  # a module (and the modules under it) → packages it may import beyond its own package's rule
    "training.gpu_check": {"tools"},  # step 2 is tools.bench.training's measurement; steps 4 and 5 time with its timer
}
OTHER = {"inference", "training", "export"}  # what a folder not named above may import
SKIP = {"runs", "node_modules", "build", "dist"}  # outputs, never sources


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(root: Path, path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file at ``path``; relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(root, path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            found.append((node.lineno, name))
            if not node.module:  # from . import x: x may be a module
                found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(root: Path) -> list[str]:
    """Every import of a repository package that the rule does not allow, as ``file:line: a imports b``."""
    bad = []
    folders = sorted(d for d in root.iterdir() if d.is_dir() and d.name not in SKIP and d.name[0] not in "._")
    for folder in folders:
        allowed = ALLOWED.get(folder.name, OTHER)
        for path in sorted(folder.rglob("*.py")):
            module = _module_name(root, path)
            extra = set().union(*(v for k, v in EXCEPTIONS.items() if module == k or module.startswith(k + ".")))
            for line, name in imported_modules(root, path):
                target = name.split(".")[0]
                if target in PACKAGES and target != folder.name and target not in allowed | extra:
                    bad.append(f"{path.relative_to(root)}:{line}: {folder.name} imports {name}")
    return bad


def test_every_package_imports_only_what_the_rule_allows():
    assert violations(ROOT) == []


def test_the_rule_as_designed():
    assert ALLOWED["inference"] == set() and ALLOWED["demo"] == {"inference"}
    assert not any("demo" in allowed for package, allowed in ALLOWED.items() if package != "tests")
    assert not any("tests" in allowed for allowed in ALLOWED.values())
    assert not any("tools" in allowed for package, allowed in ALLOWED.items() if package != "tests")
    # the exceptions are narrow: never a served package, never a whole package, never demo or tests
    assert all(k.split(".")[0] not in ("inference", "demo") and "." in k for k in EXCEPTIONS)
    assert all(v <= {"tools"} for v in EXCEPTIONS.values())
    assert all((ROOT / package).is_dir() for package in PACKAGES)


def test_the_check_sees_lazy_relative_and_dynamic_imports(tmp_path):
    (tmp_path / "inference").mkdir()
    (tmp_path / "demo").mkdir()
    (tmp_path / "inference" / "__init__.py").write_text("")
    (tmp_path / "inference" / "bench.py").write_text(
        "from .errors import InputError\n"
        "def eager():\n"
        "    from export.package import PackagedModel\n"
        "    from ..training import schemes\n"
        "    import importlib\n"
        "    return importlib.import_module('tests.helpers')\n")
    (tmp_path / "demo" / "make.py").write_text("import numpy\nfrom inference.video import write_video\n"
                                               "from training.synth.faces import FaceSource\n")
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "make.py").write_text("from training.synth.still import animate\n"
                                                   "from tests.helpers import astronaut\n")
    for package in set(PACKAGES) - {"inference", "demo"}:
        (tmp_path / package).mkdir()
    (tmp_path / "inference" / "runtime.py").write_text("from tools.bench.inference import timed\n")
    (tmp_path / "training" / "gpu_check").mkdir()
    (tmp_path / "training" / "gpu_check" / "steps.py").write_text("def step():\n"
                                                                   "    from tools.bench.training import measure\n")
    (tmp_path / "training" / "loso.py").write_text("from tools.bench.inference import timed\n")
    (tmp_path / "export" / "gpu_check.py").write_text("import tools.bench\n")  # the exception is a module, not a name
    assert sorted(violations(tmp_path)) == sorted([
        "inference/bench.py:3: inference imports export.package",
        "inference/bench.py:4: inference imports training",
        "inference/bench.py:6: inference imports tests.helpers",
        "inference/runtime.py:1: inference imports tools.bench.inference",
        "training/loso.py:1: training imports tools.bench.inference",
        "export/gpu_check.py:1: export imports tools.bench",
        "demo/make.py:3: demo imports training.synth.faces",
        "examples/make.py:2: examples imports tests.helpers",
    ])


def module_imports(root: Path) -> dict[str, set[str]]:
    """Every repository module (``training.loso``, a package as its ``__init__``: ``training.models``) → the repository
    modules it imports, at module level or lazily inside a function alike. ``from package import name`` imports the
    module ``package.name`` when there is one, else the package; ``import a.b.c`` the deepest of ``a.b.c``, ``a.b``,
    ``a`` that is a module. (The parent packages Python runs first are not edges: a package's ``__init__`` has run
    before any of its modules; what it imports itself is counted.)"""
    modules = {_module_name(root, path): path for package in PACKAGES if (root / package).is_dir()
               for path in (root / package).rglob("*.py") if not SKIP.intersection(path.relative_to(root).parts)}

    def resolve(name: str) -> str | None:
        parts = name.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        return ".".join(parts) or None

    graph = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found |= {resolve(alias.name) for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = ".".join((package[:len(package) - node.level + 1] if node.level else [])
                                + ([node.module] if node.module else []))
                found |= {resolve(f"{base}.{alias.name}") for alias in node.names}
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                    found.add(resolve(node.args[0].value))
        graph[name] = found - {None, name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import circles of ``graph`` (module → modules it imports): each a sorted list of the modules that import
    one another round a circle (a strongly connected component of more than one module), sorted."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []
    for start in sorted(graph):  # Tarjan's algorithm, iteratively (no recursion limit on a long chain)
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(sorted(component))
    return sorted(circles)


def test_no_module_imports_itself_round_a_circle():
    graph = module_imports(ROOT)
    assert {"training.loso", "training.foldbatch", "training.folds", "training.loop", "training.cache",
            "training.datasets.flowset", "training.synth.__main__", "training.synth.long"} <= set(graph)
    assert "training.folds" in graph["training.loso"] and "training.foldbatch" in graph["training.folds"]
    assert import_circles(graph) == []


def test_the_circle_check_sees_lazy_and_from_package_imports(tmp_path):
    """A lazy ``from .pkg import mod`` closing a circle, a package importing its modules that import it back, and
    an ``importlib.import_module`` are all found; a chain without a circle is not one."""
    files = {
        "training/__init__.py": "",
        "training/cache.py": "def open_():\n    from .datasets import flowset\n",
        "training/datasets/__init__.py": "",
        "training/datasets/flowset.py": "from ..cache import open_\n",
        "training/models/__init__.py": "from . import net\n",
        "training/models/net.py": "from . import register\n",
        "training/a.py": "import training.b\n",
        "training/b.py": "def late():\n    import importlib\n    importlib.import_module('training.c')\n",
        "training/c.py": "from training import d\n",
        "training/d.py": "from .a import x\n",
        "training/e.py": "from .cache import open_\nfrom . import a\n",
        "inference/__init__.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert import_circles(module_imports(tmp_path)) == [
        ["training.a", "training.b", "training.c", "training.d"],
        ["training.cache", "training.datasets.flowset"],
        ["training.models", "training.models.net"],
    ]
