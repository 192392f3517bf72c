"""The SDK as users get it: the README example runs against a live server, and
``pip install ./clients/python`` into a fresh venv pulls httpx and numpy from the index and works
without any of the server's dependencies."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "docs" / "README-client.md"


def readme_example() -> str:
    text = README.read_text()
    assert "## Python client" in text
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1, "the Python client section has exactly one runnable example"
    return blocks[0]


def run_example(python: str, live_server, data_dir: Path, tmp_path: Path) -> str:
    script = tmp_path / "example.py"
    script.write_text(readme_example())
    env = {**os.environ, "HEBB_URL": live_server.url, "HEBB_API_KEY": live_server.write_key,
           "HEBB_DATA_DIR": str(data_dir)}
    done = subprocess.run([python, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def check_example_output(stdout: str) -> None:
    accuracy = {k: float(v) for k, v in re.findall(r"(prequential|test) accuracy ([0-9.]+)", stdout)}
    assert accuracy.keys() == {"prequential", "test"}, stdout
    assert accuracy["prequential"] > 0.6 and accuracy["test"] > 0.75, stdout  # 1,000 MNIST samples, one pass
    assert "probabilities (500, 10)" in stdout


def test_readme_example_runs_against_a_live_server(live_server, data_dir, tmp_path):
    stdout = run_example(sys.executable, live_server, data_dir, tmp_path)
    check_example_output(stdout)
    lines = stdout.strip().splitlines()
    assert lines[-2].strip() in {str(d) for d in range(10)}  # the feedback label, read back
    assert lines[-1].endswith("samples learned")


def test_pip_install_into_a_fresh_venv_works_without_server_dependencies(live_server, data_dir, tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO / "clients" / "python", source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "dist", "__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    # dependencies come from the package index (no --no-deps); [progress] adds tqdm for the example
    install = subprocess.run([python, "-m", "pip", "install", "--disable-pip-version-check", "-q", f"{source}[progress]"],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-2000:]
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u, hebb_client, httpx, numpy; "
                       "print(hebb_client.__version__, [m for m in ('numba', 'fastapi', 'uvicorn', 'model', 'service') "
                       "if u.find_spec(m)])"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split(" ", 1) == ["0.1.0", "[]\n"]  # none of the server's packages came along
    check_example_output(run_example(python, live_server, data_dir, tmp_path))
