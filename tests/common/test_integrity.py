"""sha256 sidecars: damage is caught, and a kill between the sidecar and the file is not taken for damage."""

from __future__ import annotations

import hashlib

import pytest

from common.errors import UserError
from common.integrity import record_sha256, sidecar, verify_sha256, write_sidecar


def test_a_file_matches_its_sidecar_and_damage_is_named(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"weights v1")
    digest = record_sha256(path)
    assert sidecar(path).read_text() == f"{digest}  last.pt\n"  # sha256sum's format
    assert verify_sha256(path) == digest == hashlib.sha256(b"weights v1").hexdigest()
    path.write_bytes(b"weights v1 but altered")
    with pytest.raises(UserError, match=r"last\.pt: sha256 \w+\.\.\. does not match last\.pt\.sha256"):
        verify_sha256(path)


def test_a_kill_between_the_sidecar_and_the_file_leaves_a_valid_pair(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"epoch 1")
    record_sha256(path)
    write_sidecar(path, hashlib.sha256(b"epoch 2").hexdigest())  # the new sidecar is in place ...
    assert verify_sha256(path) == hashlib.sha256(b"epoch 1").hexdigest()  # ... the old file still reads
    path.write_bytes(b"epoch 2")  # ... and so does the new one once it replaced the old
    assert verify_sha256(path) == hashlib.sha256(b"epoch 2").hexdigest()
    write_sidecar(path, hashlib.sha256(b"epoch 3").hexdigest())
    path.write_bytes(b"epoch 1")  # two generations back is not accepted
    with pytest.raises(UserError, match="does not match"):
        verify_sha256(path)


def test_a_missing_or_malformed_sidecar(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"model")
    assert verify_sha256(path) is None
    with pytest.raises(UserError, match=r"m\.onnx: no m\.onnx\.sha256 beside it"):
        verify_sha256(path, required=True)
    sidecar(path).write_text("not a digest\n")
    with pytest.raises(UserError, match=r"m\.onnx\.sha256: not a sha256 sidecar"):
        verify_sha256(path)


def test_two_interrupted_writes_in_a_row_still_leave_the_intact_file_valid(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"epoch 1")
    record_sha256(path)
    write_sidecar(path, hashlib.sha256(b"epoch 2").hexdigest())  # killed (or disk full) before epoch 2 landed
    write_sidecar(path, hashlib.sha256(b"epoch 2 again").hexdigest())  # and again after a resume
    assert verify_sha256(path) == hashlib.sha256(b"epoch 1").hexdigest()
    path.write_bytes(b"epoch 1, damaged")
    write_sidecar(path, hashlib.sha256(b"epoch 3").hexdigest())  # a damaged file is not vouched for
    with pytest.raises(UserError, match="does not match"):
        verify_sha256(path)
