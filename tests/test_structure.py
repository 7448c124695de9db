"""The layout promises of docs/architecture.md: modules import, model packages stand alone, one
family contract, the API does what the CLI does, and errors are typed wherever user input reaches."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from zoo import families
from zoo.errors import FormatError, OutputError

ROOT = Path(__file__).resolve().parent.parent
DEMO_ZIP = ROOT / "scripts" / "demo_data" / "tapas_nq_retriever_tiny.zip"
MODEL_IMPORTS = {"torch", "transformers", "safetensors", "numpy"} | set(sys.stdlib_module_names)


def _modules(package: str) -> list[str]:
    """Every module of a package, except `__main__` (running it is its job, not importing it)."""
    root = importlib.import_module(package)
    names = [m.name for m in pkgutil.walk_packages(root.__path__, package + ".")]
    return [package] + [n for n in names if not n.endswith(".__main__")]


@pytest.mark.parametrize("name", _modules("zoo") + _modules("converters"))
def test_every_module_imports(name):
    importlib.import_module(name)


def _imports(path: Path) -> list[tuple[int, str]]:
    """(relative level, module) of every import statement in a file, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(0, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or ""))
    return found


@pytest.mark.parametrize(
    "package",
    sorted(p.name for p in (ROOT / "zoo" / "models").iterdir() if p.is_dir() and (p / "__init__.py").is_file()),
)
def test_model_packages_import_only_their_own_files_and_allowed_libraries(package):
    for path in sorted((ROOT / "zoo" / "models" / package).glob("*.py")):
        for level, module in _imports(path):
            where = f"{path.relative_to(ROOT)} imports {'.' * level}{module}"
            if level:
                assert level == 1, where + ": relative imports stay inside the family package"
            else:
                assert module.split(".")[0] in MODEL_IMPORTS, where


def test_no_module_shadows_a_public_function():
    for name in zoo.__all__:
        if callable(getattr(zoo, name)) and not isinstance(getattr(zoo, name), type):
            assert importlib.util.find_spec(f"zoo.{name}") is None, f"zoo.{name} is both a function and a module"


def test_all_lists_the_api():
    from zoo import api

    public = {
        n
        for n, v in vars(api).items()
        if callable(v) and getattr(v, "__module__", "") == "zoo.api" and not n.startswith("_")
    }
    assert public <= set(zoo.__all__)


def test_family_contract_matches_the_code_it_names():
    for fam in families.FAMILIES:
        checks = fam.checks_module()
        assert all(callable(getattr(checks, f)) for f in ("encodings", "golden", "registry_golden")), fam.name
        assert callable(fam.bench_module().run), fam.name
        assert callable(families.import_attr(fam.loader)), fam.name
        assert set(fam.card.pipeline_tags) == set(fam.tasks), fam.name
        for fmt in fam.formats:
            module = importlib.import_module(fmt.converter)
            assert (fmt.name, fam.name) == (module.FORMAT, module.FAMILY)
            assert fmt.task in fam.tasks
        if fam.model_package:
            importlib.import_module(fam.model_package)
    registry = zoo.list_models()
    assert {e.family for e in registry} == set(families.names())


def test_registry_rejects_a_task_of_another_family(tmp_path):
    from zoo.errors import RegistryError
    from zoo.registry import load_registry

    data = json.loads((ROOT / "registry.json").read_text())
    entry = next(m for m in data["models"] if m["family"] == "splade")
    bad = {**entry, "id": "bad-task", "task": "reader"}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"schema_version": 1, "models": [bad]}))
    with pytest.raises(RegistryError, match="not a splade task"):
        load_registry([path])


def test_api_converts_a_local_zip(tmp_path):
    out = zoo.convert(DEMO_ZIP, format="tapas-retriever", out=tmp_path / "out")
    data = zoo.read_manifest(out)
    assert data["format"] == "tapas-retriever" and data["family"] == "tapas"
    assert [c["verdict"] for c in data["checks_at_conversion"]] == ["PASS", "PASS"]
    model = zoo.load(out)
    assert type(model).__name__ == "TapasDualEncoder"
    with pytest.raises(zoo.ZooError, match="takes no option"):
        zoo.convert(DEMO_ZIP, format="tapas-retriever", out=tmp_path / "o2", vision="x")
    with pytest.raises(zoo.ZooError, match="no such file"):
        zoo.convert(tmp_path / "missing.zip", format="tapas-retriever", out=tmp_path / "o3")


def test_model_package_errors_become_format_errors(tmp_path):
    out = zoo.convert(DEMO_ZIP, format="tapas-retriever", out=tmp_path / "out")
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "model_type": "bert"}))
    with pytest.raises(FormatError, match="not a zoo TAPAS model") as info:
        zoo.load(out)
    assert info.value.exit_code == 2


def test_unwritable_out_is_an_output_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OutputError):
        zoo.convert(DEMO_ZIP, format="tapas-retriever", out=blocker)
    with pytest.raises(OutputError):
        zoo.convert(DEMO_ZIP, format="tapas-retriever", out=blocker / "below")


def _zoo_cli(*args: str, env: dict[str, str] | None = None, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "zoo", *args]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "ZOO_REGISTRY": "", **(env or {})},
    )


def test_usage_and_output_errors_are_json_with_exit_2(tmp_path):
    usage = _zoo_cli("list", "--family", "nope", "--json")
    assert usage.returncode == 2
    assert json.loads(usage.stdout)["error"]["type"] == "UsageError"
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    result = _zoo_cli(
        "convert",
        "--from",
        str(DEMO_ZIP),
        "--format",
        "tapas-retriever",
        "--out",
        str(blocker),
        "--json",
        env={"ZOO_HOME": str(tmp_path / "home")},
    )
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "OutputError" and "Traceback" not in result.stderr
    proc = _zoo_cli(
        "convert",
        "--from",
        str(DEMO_ZIP),
        "--format",
        "tapas-retriever",
        "--out",
        "/proc/zoo-out",
        "--json",
        env={"ZOO_HOME": str(tmp_path / "home")},
    )
    assert proc.returncode == 2 and json.loads(proc.stdout)["error"]["type"] == "OutputError"


BLOCK_TENSORFLOW = """
import sys
sys.modules["tensorflow"] = None  # `import tensorflow` now fails as if it were not installed
from zoo.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_missing_optional_dependency_names_the_extra(tmp_path):
    result = _zoo_cli(
        "convert",
        "--from",
        str(DEMO_ZIP),
        "--format",
        "tapas-retriever",
        "--out",
        str(tmp_path / "out"),
        "--json",
        code=BLOCK_TENSORFLOW,
        env={"ZOO_HOME": str(tmp_path / "h")},
    )
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)["error"]
    assert error["type"] == "MissingDependencyError" and error["extra"] == "tf"
    assert "pip install 'zoo[tf]'" in error["message"] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
