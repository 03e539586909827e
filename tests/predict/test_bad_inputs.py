"""Bad input to ``predict``: each a one-line error naming what and where, exit status 2, nothing written changed."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from tests.predict.runs import output_root, run_predict, snapshot


@dataclass(frozen=True)
class Case:
    """One bad command line: the arguments (``{m}`` the model, ``{o}`` the other model, ``{mixed}``,
    ``{evaluation}``, ``{t}`` the test's folder), what to prepare first, and the expected message (a regex)."""

    argv: str
    message: str
    setup: Callable[[Path], None] = lambda t: None


def no_card(t: Path) -> None:
    model = onnx.load(str(t.parent / "model.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(t / "bare.onnx"))


CASES = {
    "empty folder": Case("{t}/empty --model {m}", r"empty: no image files in this folder or below it",
                         lambda t: (t / "empty").mkdir()),
    "glob matching nothing": Case("'{t}/*.jpeg' --model {m}", r"\*\.jpeg: the glob matches nothing"),
    "directory loop": Case("{t}/loop --model {m}", r"loop/inner/back: a directory loop",
                           lambda t: (_image(t / "loop" / "inner" / "a.png"),
                                      os.symlink(t / "loop", t / "loop" / "inner" / "back"))),
    "paths with missing entries": Case("--paths {t}/todo.txt --model {m}",
                                       r"2 problems in the input files:\n  .*todo\.txt:2: no such file: .*gone\.png\n"
                                       r"  .*todo\.txt:3: no such file",
                                       lambda t: ((t / "todo.txt").write_text(f"{t}/ok.png\ngone.png\nalso.png\n"),
                                                  _image(t / "ok.png"))),
    "model without a card": Case("{mixed}/raw --model {t}/bare.onnx", r"bare\.onnx: no 'imagepipe\.model_card' in the "
                                                                     r"model's metadata", no_card),
    "model not found": Case("{mixed}/raw --model {t}/nope.onnx", r"nope\.onnx: model not found"),
    "shard 3/2": Case("{mixed}/raw --model {m} --shard 3/2", r"--shard 3/2: the index must be 0\.\.1"),
    "shard 0/0": Case("{mixed}/raw --model {m} --shard 0/0", r"--shard 0/0: the shard count must be at least 1"),
    "shard text": Case("{mixed}/raw --model {m} --shard half", r"--shard 'half': expected i/n"),
    "operating point of another model": Case(
        "{mixed}/raw --model {o} --operating-point {evaluation} --precision 0.99",
        r"the operating point comes from .*mixed, an evaluation of another model \(sha256 \w{12}\.\.\.\), but "
        r".*other\.onnx has sha256"),
    "a target not computed": Case("{mixed}/raw --model {m} --operating-point {evaluation} --recall 0.8",
                                  r"computed recall operating points for \['0\.9'\], not 0\.8\. Add it .*evaluate "
                                  r"score .*predictions\.csv --recall-targets 0\.9 0\.8"),
    "a target without an evaluation": Case("{mixed}/raw --model {m} --precision 0.9",
                                           r"--precision and --recall choose a target of an --operating-point"),
    "two targets": Case("{mixed}/raw --model {m} --operating-point {evaluation} --precision 0.9 --recall 0.9",
                        r"exactly one target"),
    "not an evaluation": Case("{mixed}/raw --model {m} --operating-point {mixed} --precision 0.9",
                              r"mixed: not an evaluation folder"),
    "threshold file": Case("{mixed}/raw --model {m} --threshold {t}/t.yaml",
                           r"t\.yaml: 7: 2 is not a number in \[0, 1\]",
                           lambda t: (t / "t.yaml").write_text("".join(f"'{d}': {2 if d == 7 else 0.5}\n"
                                                                        for d in range(10)))),
    "top-k": Case("{mixed}/raw --model {m} --top-k 0", r"--top-k 0: the model has 10 classes; give 1\.\.10"),
    "provider": Case("{mixed}/raw --model {m} --providers CUDAExecutionProvider",
                     r"--providers: \['CUDAExecutionProvider'\] not available; this onnxruntime .* offers"),
    "existing output": Case("{mixed}/raw --model {m} --name keep", r"keep already exists; choose another --name, or "
                                                                   r"pass --overwrite"),
    "a name that is a path": Case("{mixed}/raw --model {m} --name a/b", r"--name 'a/b': a plain name"),
    "resume of nothing": Case("{mixed}/raw --model {m} --name fresh --resume", r"fresh: no prediction to resume"),
    "stream overwrite": Case("{mixed}/raw --model {m} --stream --overwrite", r"--overwrite replaces a finished output"),
    "merge of nothing": Case("merge", r"the following arguments are required: shards"),
}


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(path)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_bad_input_is_one_clear_error_and_changes_nothing(case, models, mixed, evaluation, tmp_path, capsys):
    os.symlink(models.model, tmp_path / "model.onnx")
    work = tmp_path / "work"
    work.mkdir()
    case.setup(work)
    assert run_predict([str(mixed / "raw" / "1"), "--model", str(models.model), "--name", "keep", "--no-progress"],
                       capsys)[0] == 0
    before = snapshot(output_root(), mixed, work)
    argv = case.argv.format(t=work, m=models.model, o=models.other, mixed=mixed, evaluation=evaluation)
    status, _, err = run_predict(shlex.split(argv), capsys)
    assert status == 2, err
    assert re.search(case.message, err), err
    assert "Traceback" not in err and (err.startswith("error: ") or err.startswith("usage: "))
    assert snapshot(output_root(), mixed, work) == before


@pytest.mark.parametrize("bad", [np.nan, -0.25, 1.5, np.inf])
def test_outputs_that_are_not_probabilities_are_refused_naming_the_first_image(bad):
    from types import SimpleNamespace

    from common.errors import UserError
    from predict.classifier import Classifier

    classifier = SimpleNamespace(model=SimpleNamespace(path=Path("model/m.onnx")))
    good = np.full((4, 3), 1 / 3, dtype=np.float32)  # (B, K)
    Classifier._check_probabilities(classifier, good, ["/a", "/b", "/c", "/d"])
    Classifier._check_probabilities(classifier, good[:0], [])  # an empty batch: nothing to check
    good[2, 1], good[3, 0] = bad, bad
    with pytest.raises(UserError, match=r"its outputs for /c are not probabilities in \[0, 1\]"):
        Classifier._check_probabilities(classifier, good, ["/a", "/b", "/c", "/d"])


def test_the_python_api_refuses_nan_outputs_and_an_image_without_pixels_as_the_command_does(digits_root, tmp_path):
    from PIL import Image

    from common.errors import UserError
    from predict.classifier import Classifier
    from tests.evaluate.conftest import centroid_model

    nan_model = centroid_model(tmp_path / "nan.onnx", digits_root, temperature=float("nan"))
    image = np.zeros((8, 8), dtype=np.uint8)
    with pytest.raises(UserError, match=r"nan.onnx: its outputs for <image 0> are not probabilities"):
        Classifier.load(nan_model).predict([image])
    good = Classifier.load(centroid_model(tmp_path / "good.onnx", digits_root))
    with pytest.raises(UserError, match="a PIL image of 0 x 5 pixels has nothing to predict"):
        good.predict(Image.new("L", (0, 5)))
    with pytest.raises(UserError, match=r"an array image must be uint8 with shape"):
        good.predict(np.zeros((0, 5), dtype=np.uint8))
