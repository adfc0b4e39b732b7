"""Handler bundles built with the real `tsserve bundle`, for the bridge tests."""

import os
import subprocess

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def bundle(handler: str, out_dir: str) -> str:
    subprocess.run(
        ["node", os.path.join(ROOT, "bin", "tsserve.mjs"), "bundle", "--handler", handler, "--out", out_dir],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    return os.path.join(out_dir, "handler.mjs")


@pytest.fixture(scope="session")
def echo_bundle(tmp_path_factory) -> str:
    return bundle(os.path.join(ROOT, "test", "fixtures", "handlers", "echo-handler.ts"), str(tmp_path_factory.mktemp("echo-bundle")))
