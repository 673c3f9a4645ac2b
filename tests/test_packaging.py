"""The wheel ships the Textual CSS, and styles_dir() finds it from an installed layout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not installed")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [uv, "build", "--wheel", "-o", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    (built,) = out.glob("sessionscope-*.whl")
    return built


@pytest.mark.timeout(180)
def test_wheel_contains_the_styles(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {name for name in names if name.startswith("sessionscope/styles/")}
    expected = {f"sessionscope/styles/{p.name}" for p in (ROOT / "styles").glob("*.tcss")}
    assert {"sessionscope/styles/app.tcss", "sessionscope/styles/sessions.tcss"} <= shipped
    assert expected <= shipped
    assert "sessionscope/tui/app.py" in names
    assert "sessionscope/py.typed" in names


@pytest.mark.timeout(180)
def test_styles_resolve_from_an_unpacked_wheel(wheel: Path, tmp_path: Path) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    probe = (
        "import sessionscope.tui.styles as s; "
        "print(s.styles_dir()); print(s.stylesheet('sessions.tcss').is_file())"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"PYTHONPATH": str(tmp_path), "PATH": ""},
        cwd=tmp_path,
    )
    folder, found = result.stdout.split()
    assert Path(folder) == tmp_path / "sessionscope" / "styles"
    assert found == "True"
