"""Export: a run -> a self-describing ONNX model that computes what PyTorch computes, or nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from common.cli import run_main
from common.errors import UserError
from common.files import file_sha256
from common.images import load_samples
from common.integrity import verify_sha256
from common.lists import load_dataset, read_split
from common.model_card import CARD_KEY, ModelCard, read_model_card
from common.paths import PROJECT_ROOT
from deploy.export import ExportOptions, ParityError, export
from deploy.graph import ExportedClassifier
from deploy.parity import onnx_predictor
from networks import build_network
from networks.checkpoint import checkpoint_network_config, read_checkpoint


def options(trained_run, **changes) -> ExportOptions:
    return ExportOptions(run=str(trained_run.run_dir), network_config=trained_run.network_config, **changes)


def model_files() -> list[str]:
    folder = Path(os.environ["IMAGEPIPE_MODEL"])
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
def test_export_writes_a_self_describing_model(trained_run):
    result = export(options(trained_run, name="tiny"))
    assert model_files() == ["tiny.json", "tiny.onnx", "tiny.onnx.sha256"]
    assert verify_sha256(result.model, required=True) == file_sha256(result.model)
    assert result.parity.passed and result.parity.images == 180 and result.parity.max_abs_diff <= 1e-4
    card = read_model_card(result.model)
    assert card == ModelCard.from_json(result.model.with_suffix(".json").read_text(), "tiny.json") == result.card
    best = trained_run.run_dir / "checkpoints" / "best.pt"
    checkpoint = read_checkpoint(best)
    network_config = checkpoint_network_config(checkpoint, "best.pt")
    assert card.contract == network_config.input
    assert card.class_names == tuple(str(d) for d in range(10))
    assert card.network.hash == network_config.hash
    assert card.source.checkpoint_sha256 == file_sha256(best) and card.source.run == trained_run.run_dir.name
    assert card.training.metrics["val/accuracy"] == checkpoint["metrics"]["val/accuracy"]
    layout = json.loads(result.model.with_suffix(".json").read_text())
    assert layout["input"]["dtype"] == "uint8" and layout["input"]["layout"] == "NCHW"
    assert card.parity["passed"] is True and card.export["opset"] == 18

    model = onnx.load(str(result.model))
    (image_input,) = model.graph.input
    assert image_input.name == "images" and image_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert image_input.type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch axis
    assert [o.name for o in model.graph.output] == ["probabilities", "logits"]
    predict = onnx_predictor(result.model)
    for batch in (1, 7):
        probabilities = predict(np.zeros((batch, 1, 8, 8), dtype=np.uint8))
        assert probabilities.shape == (batch, 10) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert not [p for p in Path(os.environ["IMAGEPIPE_MODEL"]).iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_the_card_is_read_as_json_and_a_model_without_one_is_refused(trained_run, tmp_path):
    result = export(options(trained_run, name="tiny"))
    model = onnx.load(str(result.model))
    card = ModelCard.from_metadata({p.key: p.value for p in model.metadata_props}, "tiny.onnx")
    assert card.name == "tiny"
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    with pytest.raises(UserError, match=r"bare\.onnx: no 'imagepipe\.model_card' .* does not guess preprocessing"):
        read_model_card(tmp_path / "bare.onnx")
    with pytest.raises(UserError, match=r"schema_version 99"):
        ModelCard.from_metadata({CARD_KEY: json.dumps({**card.to_dict(), "schema_version": 99})}, "m.onnx")
    with pytest.raises(UserError, match=r"not valid JSON"):
        ModelCard.from_metadata({CARD_KEY: "__import__('os')"}, "m.onnx")


@pytest.mark.slow
def test_onnx_predictions_equal_pytorch_on_the_test_list(trained_run):
    result = export(options(trained_run, name="tiny"))
    checkpoint = read_checkpoint(trained_run.run_dir / "checkpoints" / "best.pt")
    network = build_network(checkpoint_network_config(checkpoint, "best.pt"))
    network.load_state_dict(checkpoint["model"])
    module = ExportedClassifier(network.eval()).eval()
    dataset = load_dataset(trained_run.digits_root)
    images, labels, _ = load_samples(dataset, read_split(dataset, "test"), network.config.input)
    with torch.no_grad():
        expected = module(torch.from_numpy(images))[0].numpy()
    got = onnx_predictor(result.model)(images)
    assert len(images) == 360
    assert np.abs(got - expected).max() <= 1e-4
    assert (got.argmax(axis=1) == expected.argmax(axis=1)).all()  # top-1 agreement 100%


@pytest.mark.slow
def test_a_changed_shared_network_config_is_refused(trained_run, tmp_path):
    changed = tmp_path / "tiny.yaml"
    changed.write_text(trained_run.network_config.read_text().replace("dropout: 0.1", "dropout: 0.3"))
    with pytest.raises(UserError) as excinfo:
        export(ExportOptions(run=str(trained_run.run_dir), network_config=changed))
    message = str(excinfo.value)
    assert "arch.params.dropout: 0.1 -> 0.3" in message and "restore the shared config" in message
    assert message.count("hash ") == 2
    assert model_files() == []


@pytest.mark.slow
def test_unusable_checkpoints_give_clear_errors(trained_run, tmp_path):
    best = trained_run.run_dir / "checkpoints" / "best.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(best.read_bytes()[:5000])
    with pytest.raises(UserError, match=r"truncated\.pt: not a readable checkpoint"):
        export(options(trained_run, checkpoint=str(truncated)))
    checkpoint = torch.load(best, weights_only=True)
    checkpoint["model"].pop("classifier.weight")
    torch.save(checkpoint, tmp_path / "incompatible.pt")
    with pytest.raises(UserError, match=r"incompatible\.pt: the weights do not match the network .*missing 1"):
        export(options(trained_run, checkpoint=str(tmp_path / "incompatible.pt")))
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match=r"foreign\.pt: not a checkpoint written by this project's training stage"):
        export(options(trained_run, checkpoint=str(tmp_path / "foreign.pt")))
    with pytest.raises(UserError, match=r"no training run in"):
        export(ExportOptions())
    assert model_files() == []


def perturbing(to_onnx):
    """An exporter that writes a model whose first convolution weight is off by a little."""

    def export_then_perturb(module, path, opset):
        to_onnx(module, path, opset)
        model = onnx.load(str(path))
        weight = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        values = onnx.numpy_helper.to_array(weight).copy()
        values += 0.05
        weight.CopyFrom(onnx.numpy_helper.from_array(values, weight.name))
        onnx.save(model, str(path))

    return export_then_perturb


@pytest.mark.slow
def test_the_parity_gate_fails_and_leaves_no_model(trained_run, monkeypatch, capsys):
    import deploy.export as module

    monkeypatch.setattr(module, "to_onnx", perturbing(module.to_onnx))
    with pytest.raises(ParityError, match=r"failed its parity check, so nothing was written .*FAILED.*Worst samples"):
        export(options(trained_run, name="broken"))
    assert model_files() == []
    from deploy.__main__ import main

    code = run_main(main, ["--run", str(trained_run.run_dir), "--network-config", str(trained_run.network_config)])
    assert code == 2 and "failed its parity check" in capsys.readouterr().err
    assert model_files() == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_int8_export_reports_its_parity_against_fp32(trained_run, mode):
    result = export(options(trained_run, name="tiny", quantize="int8", quantize_mode=mode, int8_min_agreement=0.9))
    assert model_files() == ["tiny-int8.json", "tiny-int8.onnx", "tiny-int8.onnx.sha256", "tiny.json", "tiny.onnx",
                             "tiny.onnx.sha256"]
    assert result.int8_model is not None and result.int8_parity.passed
    card = read_model_card(result.int8_model)
    assert card.export["quantization"]["mode"] == mode and card.source.fp32_model == "tiny.onnx"
    assert card.parity["reference"] == "onnxruntime fp32" and card.parity["top1_agreement"] >= 0.9
    assert result.int8_model.stat().st_size < result.model.stat().st_size
    assert card.contract == result.card.contract


@pytest.mark.slow
def test_an_existing_model_is_never_silently_overwritten(trained_run):
    export(options(trained_run, name="tiny"))
    before = Path(os.environ["IMAGEPIPE_MODEL"], "tiny.onnx").read_bytes()
    with pytest.raises(UserError, match=r"tiny\.json already exists; choose another --name, or pass --overwrite"):
        export(options(trained_run, name="tiny", checkpoint="last"))
    assert Path(os.environ["IMAGEPIPE_MODEL"], "tiny.onnx").read_bytes() == before
    replaced = export(options(trained_run, name="tiny", checkpoint="last", overwrite=True))
    assert replaced.card.source.checkpoint.endswith("last.pt")


@pytest.mark.slow
def test_the_command_line_prints_the_parity_figures(trained_run, tmp_path):
    env = {**os.environ, "IMAGEPIPE_OUTPUT": str(trained_run.run_dir.parent.parent)}
    shutil.copy(trained_run.network_config, tmp_path / "tiny.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "deploy", "--network-config", str(tmp_path / "tiny.yaml"), "--name", "cli"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "exported" in result.stdout and "parity onnxruntime fp32 vs pytorch on 180 images" in result.stdout
    assert model_files() == ["cli.json", "cli.onnx", "cli.onnx.sha256"]
