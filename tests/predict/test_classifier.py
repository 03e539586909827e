"""The Python API: paths, Pillow images and arrays give bitwise the same probabilities; typed results; providers."""

from __future__ import annotations

import numpy as np
import onnxruntime
import pytest
from PIL import Image

from common.errors import UserError
from common.images import UnreadableImageError, load_image
from common.onnx_model import open_model
from predict import Classifier, Thresholds
from predict.decisions import ABSTAIN


@pytest.fixture(scope="module")
def classifier(models):
    return Classifier.load(models.model)


@pytest.fixture
def files(mixed):
    return sorted((mixed / "raw").rglob("*.*"))[:24]


def readable(files):
    return [f for f in files if f.suffix not in (".txt",) and f.name != "broken.jpg"]


def test_paths_pil_images_and_arrays_give_the_same_probabilities(classifier, files):
    paths = readable(files)
    by_path = classifier.predict(paths)
    by_pil = classifier.predict([Image.open(p) for p in paths])
    decoded = [np.asarray(Image.open(p).convert("RGB")) for p in paths if not p.name.endswith("rotated.jpg")]
    assert [r.source for r in by_path] == [str(p) for p in paths]
    assert np.array_equal(np.stack([r.probabilities for r in by_path]), np.stack([r.probabilities for r in by_pil]))
    # the model's own session on the shared preprocessing, one image at a time
    session = classifier.model.session
    expected = np.concatenate([session.run(["probabilities"], {"images": load_image(p, classifier.contract)[None]})[0]
                               for p in paths])
    assert np.array_equal(np.stack([r.probabilities for r in by_path]), expected)
    assert len(classifier.predict(decoded)) == len(decoded)


def test_an_array_is_an_image_in_height_width_channels_layout(classifier, files):
    path = readable(files)[0]
    rgb = np.asarray(Image.open(path).convert("RGB"))  # (H, W, 3)
    from_array = classifier.predict(rgb)[0]
    from_pil = classifier.predict(Image.fromarray(rgb))[0]
    assert np.array_equal(from_array.probabilities, from_pil.probabilities) and from_array.source == "<image 0>"
    with pytest.raises(UserError, match=r"<image 0>: an array image must be uint8 with shape \(H, W\)"):
        classifier.predict([rgb.astype(np.float32)])
    with pytest.raises(UserError, match="got uint8 \\(3, 8, 8\\)"):
        classifier.predict([np.zeros((3, 8, 8), dtype=np.uint8)])


def test_results_are_typed_top_k_with_the_tie_rule(classifier, files):
    result = classifier.predict(readable(files)[0])[0]
    assert len(result.top) == 5 and result.decided and result.decision == result.top[0].name
    assert [s.probability for s in result.top] == sorted((s.probability for s in result.top), reverse=True)
    assert result.top[0].probability == result.probabilities.max() and result.label == result.top[0].label
    assert result.margin == pytest.approx(result.top[0].probability - result.top[1].probability)
    tied = np.array([[0.25, 0.25, 0.5, 0.0], [0.4, 0.1, 0.1, 0.4]], dtype=np.float32)
    labels, values = classifier.top(tied)
    assert labels[:, :3].tolist() == [[2, 0, 1], [0, 3, 1]]  # equal probabilities: the lower index first


def test_thresholds_decide_or_abstain(models, files):
    names = [str(d) for d in range(10)]
    strict = Classifier.load(models.model, thresholds=Thresholds.from_mapping(dict.fromkeys(names, 1.0), names),
                             top_k=10)
    results = strict.predict(readable(files))
    assert all(r.decision == ABSTAIN and r.label is None and r.threshold == 1.0 for r in results if
               r.top[0].probability < 1)
    never = Classifier.load(models.model, thresholds=Thresholds.from_mapping(dict.fromkeys(names), names))
    assert {r.decision for r in never.predict(readable(files))} == {ABSTAIN}


def test_unreadable_images_follow_the_policy(classifier, mixed, caplog):
    broken, good = mixed / "raw" / "broken.jpg", sorted((mixed / "raw" / "0").glob("*.png"))[0]
    with pytest.raises(UnreadableImageError, match=r"broken\.jpg: cannot decode .*--on-unreadable skip"):
        classifier.predict([good, broken])
    kept = classifier.predict([good, broken], on_unreadable="skip")
    assert [r.source for r in kept] == [str(good)] and "skipped an unreadable image" in caplog.text


def test_thresholds_of_another_model_or_other_classes_are_refused(models):
    thresholds = Thresholds(tuple(str(d) for d in range(10)), (0.5,) * 10, {"kind": "evaluation", "evaluation": "e"},
                            "f" * 64)
    with pytest.raises(UserError, match=r"an evaluation of another model \(sha256 ffffffffffff"):
        Classifier.load(models.model, thresholds=thresholds)
    with pytest.raises(UserError, match=r"the thresholds name the classes \['a', 'b'\]"):
        Classifier.load(models.model, thresholds=Thresholds(("a", "b"), (0.5, 0.5)))
    with pytest.raises(UserError, match=r"--top-k 11: the model has 10 classes"):
        Classifier.load(models.model, top_k=11)


def test_an_unavailable_provider_is_an_error_naming_the_available_ones(models):
    with pytest.raises(UserError, match=r"--providers: \['NoSuchExecutionProvider'\] not available; this onnxruntime "
                                        r".* offers \[.*'CPUExecutionProvider'"):
        Classifier.load(models.model, providers=["NoSuchExecutionProvider"])


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_silent_fallback_to_another_provider_is_an_error(models, monkeypatch):
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA: no fallback to provoke")
    available = onnxruntime.get_available_providers()
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [*available, "CUDAExecutionProvider"])
    with pytest.raises(UserError, match=r"onnxruntime did not take the execution provider\(s\) "
                                        r"\['CUDAExecutionProvider'\] \(the session uses \['CPUExecutionProvider'\]\)"):
        open_model(models.model, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))


def test_the_providers_used_are_known(classifier):
    assert classifier.model.providers == ["CPUExecutionProvider"] and len(classifier.model.sha256) == 64
    assert classifier.model.verified
