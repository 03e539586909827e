"""The studio's predict page: uploads checked (size, count, image or not, decompression bombs) before anything is
kept, kept only under output/studio/uploads with names made by the studio, predictions of predict.Classifier with
an evaluation's operating point, and every name escaped. Torch-free: the model is the evaluation tests' numpy
classifier of the digits."""

from __future__ import annotations

import io
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from common.files import write_json
from common.integrity import record_sha256, recorded_digests
from common.lists import load_dataset, read_split
from common.paths import data_dir, model_dir, output_dir
from common.results import EvaluationRecord, write_evaluation_record
from studio.pages.predicting import saved_name
from tests.evaluate.conftest import centroid_model
from tests.image_files import write_blank_png
from tests.studio.conftest import SAME_ORIGIN


@dataclass(frozen=True)
class Made:
    """Written once per module: two models (with sidecars), an evaluation of the first, digit images as PNG bytes."""

    model: Path
    other: Path
    evaluation: Path
    pngs: list[bytes]
    digits_root: Path


PRECISION_99 = {"0": 0.9, "1": 0.9999, "2": 0.5, "3": 0.5, "4": 0.5, "5": 0.5, "6": 0.5, "7": 0.5, "8": 0.5, "9": None}
"""The evaluation's thresholds for precision 0.99 (None: unreachable there, so never decided)."""


def write_evaluation(folder: Path, model: Path, class_names: list[str]) -> Path:
    """An evaluation folder of ``model`` as ``pipenv run evaluate`` writes its records (metrics.json trimmed to
    what operating points read): precision targets 0.9 and 0.99, recall target 0.9."""
    per_class = [{"class": name, "operating_points": {
        "precision": {"0.9": {"threshold": 0.4}, "0.99": None if PRECISION_99[name] is None else
                      {"threshold": PRECISION_99[name]}},
        "recall": {"0.9": {"threshold": 0.2}}}} for name in class_names]
    folder.mkdir(parents=True)
    write_json(folder / "metrics.json", {"per_class": per_class})
    write_evaluation_record(folder, EvaluationRecord(
        name=folder.name, created="2026-01-01T00:00:00+00:00", model=model.name, list="digits/lists/test.txt",
        class_names=class_names, model_sha256=recorded_digests(model)[0]))
    return folder


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, digits_root: Path) -> Made:
    base = tmp_path_factory.mktemp("predict-page")
    model = centroid_model(base / "digits.onnx", digits_root)
    record_sha256(model)
    other = centroid_model(base / "other.onnx", digits_root, train_images=300)
    record_sha256(other)
    dataset = load_dataset(digits_root)
    evaluation = write_evaluation(base / "eval" / "digits-test", model, list(dataset.class_names))
    samples = read_split(dataset, "test")[:4]
    return Made(model, other, evaluation, [(digits_root / s.path).read_bytes() for s in samples], digits_root)


@pytest.fixture
def studio_files(made: Made) -> Made:
    """The models in this test's model folder, the evaluation in its output/eval, the digits in its data folder."""
    model_dir().mkdir(parents=True, exist_ok=True)
    for path in (made.model, made.other):
        shutil.copy(path, model_dir() / path.name)
        shutil.copy(path.with_name(path.name + ".sha256"), model_dir() / (path.name + ".sha256"))
    shutil.copytree(made.evaluation, output_dir() / "eval" / made.evaluation.name)
    return made


def uploads_root() -> Path:
    return output_dir() / "studio" / "uploads"


def saved_files() -> list[Path]:
    root = uploads_root()
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


def png(pixels: np.ndarray | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels if pixels is not None else np.full((8, 8), 128, dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def predict(signed, files: list[tuple[str, bytes]], **fields: str):
    """POST /predict with ``files`` uploaded as ``images`` and the form ``fields`` (model: digits.onnx)."""
    return signed.post("/predict", {"model": "digits.onnx", **fields},
                       files=[("images", (name, data, "image/png")) for name, data in files])


def rows(html: str) -> list[tuple[str, str]]:
    """``(name, decision)`` of each result row."""
    return [(name, re.sub(r"<[^>]+>", "", decision).split()[0]) for name, decision in
            re.findall(r'<td class="name">(.*?)</td>\s*<td class="decision">(.*?)</td>', html, re.S)]


def test_the_form_lists_the_models_and_the_chosen_models_evaluations(signed, studio_files):
    html = signed.client.get("/predict?model=digits.onnx").text
    choices = html.split('id="choose-model"')[1].split("</form>")[0]
    assert sorted(re.findall(r'<option value="([^"]+)"', choices)) == ["digits.onnx", "other.onnx"]
    assert '<option value="digits.onnx" selected>' in html
    assert '<option value="digits-test">' in html and 'enctype="multipart/form-data"' in html
    assert 'type="file" id="images" name="images" multiple accept="image/*"' in html
    other = signed.client.get("/predict?model=other.onnx").text
    assert '<option value="other.onnx" selected>' in other and 'value="digits-test"' not in other  # another model's


def test_two_uploaded_images_are_kept_and_predicted(signed, studio_files):
    response = predict(signed, [("a.png", studio_files.pngs[0]), ("b.png", studio_files.pngs[1])])
    assert response.status_code == 200, response.text
    html = response.text
    found = rows(html)
    assert [name for name, _ in found] == ["a.png", "b.png"]
    assert all(decision in [str(d) for d in range(10)] for _, decision in found)
    assert "No operating point: every top-1 class is decided." in html
    assert len(re.findall(r"<li>\d: [01]\.\d{4}</li>", html)) == 6  # the top 3 of each
    saved = saved_files()
    assert [p.name for p in saved] == ["01-a.png", "02-b.png"] and saved[0].read_bytes() == studio_files.pngs[0]
    thumbnails = re.findall(r'<img src="(/files/output/studio/uploads/[^"]+)"', html)
    assert len(thumbnails) == 2 and signed.client.get(thumbnails[0]).content == studio_files.pngs[0]


def test_an_operating_point_decides_or_abstains_with_the_threshold(signed, studio_files):
    response = predict(signed, [(f"{i}.png", data) for i, data in enumerate(studio_files.pngs)],
                       evaluation="digits-test", target_kind="precision", target="0.99")
    assert response.status_code == 200, response.text
    assert re.search(r"Operating point: \S*digits-test, precision 0.99:", response.text)
    assert "Never decided (the target was unreachable there): 9." in response.text
    explained = re.findall(r'<span class="help">(.*?)</span>', response.text.split('id="predictions"')[1])
    assert len(explained) == 4 and all(re.fullmatch(r"\d: \d\.\d{4} (≥|&lt;) threshold 0\.\d+|\d is never decided "
                                                    r"at this operating point", text) for text in explained)
    kept = saved_files()
    missing = predict(signed, [("a.png", studio_files.pngs[0])], evaluation="digits-test", target="0.5")
    assert missing.status_code == 400 and "computed precision operating points for" in missing.text
    assert "not 0.5" in missing.text and saved_files() == kept
    shutil.copytree(output_dir() / "eval" / "digits-test", output_dir() / "eval" / "copy")
    other = signed.post("/predict", {"model": "other.onnx", "evaluation": "copy", "target": "0.99"},
                        files=[("images", ("a.png", studio_files.pngs[0], "image/png"))])
    assert other.status_code == 400 and "an evaluation of another model" in other.text and saved_files() == kept
    bad = predict(signed, [("a.png", studio_files.pngs[0])], evaluation="../eval/digits-test", target="0.99")
    assert bad.status_code == 400 and "is not the name of an evaluation" in bad.text


def test_a_text_file_named_like_an_image_is_refused_by_name_and_nothing_is_kept(signed, studio_files):
    response = predict(signed, [("x.png", b"this is only text\n" * 10)])
    assert response.status_code == 400
    assert "x.png: not taken: not an image" in response.text
    assert not saved_files() and not any(uploads_root().iterdir())


def test_a_decompression_bomb_is_refused_and_the_good_image_beside_it_is_predicted(signed, studio_files, tmp_path):
    bomb = write_blank_png(tmp_path / "bomb.png", 10000, 9000).read_bytes()  # 90 M pixels, a small file
    response = predict(signed, [("bomb.png", bomb), ("fine.png", studio_files.pngs[0])])
    assert response.status_code == 200
    assert "bomb.png: not taken: cannot decode it as an image (decompression bomb: 10000x9000" in response.text
    assert [name for name, _ in rows(response.text)] == ["fine.png"]
    assert [p.name for p in saved_files()] == ["02-fine.png"]


def test_an_upload_over_the_size_limit_is_refused(signed, studio_files, monkeypatch):
    monkeypatch.setattr("studio.pages.predicting.MAX_UPLOAD_BYTES", 100)
    response = predict(signed, [("big.png", png(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64)))])
    assert response.status_code == 400 and "big.png: not taken: larger than" in response.text
    assert not saved_files()


def test_more_files_than_the_form_limit_are_refused_before_anything_is_kept(signed, studio_files):
    limit = signed.client.app.state.form_limits["max_files"]
    response = predict(signed, [(f"{i}.png", studio_files.pngs[0]) for i in range(limit + 1)])
    assert response.status_code == 400 and f"Maximum number of files is {limit}" in response.text
    assert not saved_files()


def test_a_hostile_file_name_is_saved_under_a_safe_name_and_shown_escaped(signed, studio_files):
    response = predict(signed, [("../../evil<script>.png", studio_files.pngs[0])])
    assert response.status_code == 200
    saved = saved_files()
    assert [p.name for p in saved] == ["01-evil_script.png"]
    assert saved[0].parent.parent == uploads_root()
    assert not list(output_dir().parent.glob("evil*")) and not list(output_dir().glob("evil*"))
    assert "evil<script>" not in response.text and "../../evil&lt;script&gt;.png" in response.text


@pytest.mark.parametrize("client_name, expected", [
    ("photo.JPG", "03-photo.jpg"), ("..", "03-image.jpg"), ("a\\b\\c d.png", "03-c_d.jpg"), ("", "03-image.jpg"),
    ("/etc/passwd", "03-passwd.jpg"), ("x" * 100 + ".png", "03-" + "x" * 60 + ".jpg"), (".bashrc", "03-image.jpg")])
def test_saved_names_keep_only_safe_characters_of_the_base_name(client_name, expected):
    assert saved_name(client_name, 3, ".jpg") == expected


def test_without_the_csrf_token_nothing_is_uploaded(signed, studio_files):
    response = signed.client.post("/predict", data={"model": "digits.onnx"}, headers=SAME_ORIGIN,
                                  files=[("images", ("a.png", studio_files.pngs[0], "image/png"))])
    assert response.status_code == 403 and not saved_files()


def test_images_of_a_data_set_list_and_paths_in_it(signed, studio_files):
    shutil.copytree(studio_files.digits_root, data_dir() / "digits")
    first = read_split(load_dataset(studio_files.digits_root), "test")[:2]
    response = predict(signed, [], dataset="digits", split="test", count="2",
                       paths=f"{first[0].path}\n../outside.png\nraw/nothing.png")
    assert response.status_code == 200, response.text
    assert [name for name, _ in rows(response.text)] == [first[0].path, first[1].path, first[0].path]
    assert "../outside.png: not a file of the data set digits" in response.text
    assert f'<img src="/files/data/digits/{first[0].path}"' in response.text
    too_many = predict(signed, [], dataset="digits", split="test", count="65")
    assert too_many.status_code == 400 and "1..64" in too_many.text
    nothing = predict(signed, [])
    assert nothing.status_code == 400 and "no image to predict" in nothing.text
