"""The engine stands alone: importing any of it pulls in neither Textual nor the ``tui`` package."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import engine

ENGINE_DIR = Path(engine.__file__).parent
FRONT_END = ("textual", "textual_plotext", "plotext", "tui")
MODULES = sorted(
    ".".join(("engine", *path.relative_to(ENGINE_DIR).with_suffix("").parts)).removesuffix(".__init__")
    for path in ENGINE_DIR.rglob("*.py")
)

PROBE = """
import importlib, json, sys
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_every_engine_module_is_covered():
    assert {"engine.cli.main", "engine.training.trainer", "engine.runs.checkpoint", "engine.generate", "engine.lm.corpus"} <= set(
        MODULES
    )


def test_importing_every_engine_module_imports_no_front_end():
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(MODULES)], capture_output=True, text=True, timeout=120, cwd=ENGINE_DIR.parent
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    assert set(MODULES) <= set(loaded)
    offenders = [name for name in loaded if name.split(".")[0] in FRONT_END]
    assert offenders == [], f"engine imports front-end modules: {offenders}"


def test_running_the_cli_imports_no_front_end(tmp_path):
    # the commands import parts of the engine lazily: check what a real command pulls in
    probe = (
        "import json, sys\nfrom engine.cli.main import main\n"
        f"main(['corpus-info', '--json'])\nmain(['runs', '--checkpoints', {str(tmp_path)!r}])\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ENGINE_DIR.parent)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.splitlines()[-1])
    assert [name for name in loaded if name.split(".")[0] in FRONT_END] == []


def test_no_engine_source_names_a_front_end_import():
    # also catches imports tucked inside functions, which the import probes above would miss
    for path in sorted(ENGINE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""] if node.level == 0 else []
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FRONT_END, f"{path.name}:{node.lineno} imports {name}"
