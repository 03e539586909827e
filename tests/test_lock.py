"""The Pipfile and its lock: per-machine categories that agree, and no package index named."""

from __future__ import annotations

import json
import re
import subprocess
import tomllib

import pytest

from common.paths import PROJECT_ROOT
from tools.lock import strip_sources, version_conflicts

STAGE_CATEGORIES = ("train", "deploy", "evaluate")


@pytest.fixture(scope="module")
def lock() -> dict:
    return json.loads((PROJECT_ROOT / "Pipfile.lock").read_text())


@pytest.fixture(scope="module")
def pipfile() -> dict:
    return tomllib.loads((PROJECT_ROOT / "Pipfile").read_text())


def test_every_package_locks_to_one_version_in_every_category(lock):
    assert version_conflicts(lock) == []


def test_version_conflicts_are_detected():
    fake = {"_meta": {}, "default": {"numpy": {"version": "==2.0"}}, "evaluate": {"numpy": {"version": "==1.0"}}}
    assert version_conflicts(fake) == ["numpy locks to different versions (default: ==2.0, evaluate: ==1.0)"]


def test_no_index_is_named(lock, pipfile):
    assert lock["_meta"]["sources"] == []
    assert not any("index" in entry for cat, pkgs in lock.items() if cat != "_meta" for entry in pkgs.values())
    assert "source" not in pipfile
    dirty = {"_meta": {"sources": [{"name": "x", "url": "https://example.invalid/simple"}]},
             "default": {"a": {"version": "==1", "index": "x"}}}
    assert strip_sources(dirty) == {"_meta": {"sources": []}, "default": {"a": {"version": "==1"}}}


def test_evaluation_machine_gets_no_torch_and_the_others_get_the_pinned_one(lock):
    assert not {"torch", "torchvision", "triton"} & set(lock["evaluate"])
    for category in ("default", "train", "deploy"):
        assert lock[category]["torch"]["version"] == "==2.14.1"


def test_the_stage_categories_are_what_the_stages_import(pipfile):
    assert "onnxruntime" in pipfile["evaluate"] and "matplotlib" in pipfile["evaluate"]
    assert {"onnx", "onnxscript", "onnxruntime", "torch"} <= set(pipfile["deploy"])
    assert {"torch", "omegaconf", "tensorboard"} <= set(pipfile["train"])
    for category in STAGE_CATEGORIES:
        assert set(pipfile[category]) <= set(pipfile["packages"]), f"[packages] must be the full workstation ({category})"


def test_no_tracked_file_names_a_package_registry_host():
    hosts = [".".join(("pypi", "org")), ".".join(("pythonhosted", "org")), ".".join(("download", "pytorch", "org"))]
    files = subprocess.run(["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=True).stdout
    offenders = []
    for name in filter(None, files.decode().split("\0")):
        path = PROJECT_ROOT / name
        if path.is_file() and re.search("|".join(map(re.escape, hosts)), path.read_text(errors="ignore")):
            offenders.append(name)
    assert offenders == []
