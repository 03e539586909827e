"""The launch form: drop-downs from what exists, each field checked, the same validator as `train`, errors next
to their field, the exact command line, nothing but checked values on it."""

from __future__ import annotations

import re

import pytest

from common.paths import data_dir
from studio import launch
from studio.launch import command_from_form, validate


def errors_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r'id="error-(\w+)">([^<]*)<', html))


def test_drop_downs_list_what_exists(tmp_path):
    (data_dir() / "flowers").mkdir(parents=True)
    (data_dir() / "flowers" / "classes.txt").write_text("a\nb\n")
    (data_dir() / "not-a-dataset").mkdir()
    options = launch.choices()
    assert options["dataset"] == ["digits", "flowers"]
    assert "digits_cnn" in options["network"] and "default.yaml" in options["recipe"]
    assert "space.yaml" not in options["recipe"]  # a sweep's search space is not a recipe


def test_the_choices_are_training_s_own():
    from train.config import OPTIMIZERS, SCHEDULES
    from train.watch.trackers.base import TRACKERS
    assert launch.OPTIMIZERS == OPTIMIZERS and launch.SCHEDULES == SCHEDULES
    assert set(launch.TRACKERS) == set(TRACKERS.names())


def test_a_form_becomes_an_argument_list():
    checked = command_from_form({"name": "lr-low", "recipe": "default.yaml", "dataset": "digits", "dev": "on",
                                 "epochs": "3", "lr": "1e-3", "optimiser": "sgd", "trackers": ["tensorboard", "mlflow"],
                                 "overrides": "optim.weight_decay = 0.01\n\nseed=3"})
    assert checked.errors == {}
    assert checked.arguments == ["--name", "lr-low", "--config", "train/configs/default.yaml", "data.dataset=digits",
                                 "--dev", "epochs=3", "optim.lr=0.001", "optim.name=sgd",
                                 "log.trackers=[tensorboard,mlflow]", "optim.weight_decay=0.01", "seed=3",
                                 "--no-progress"]
    assert checked.command.startswith("pipenv run train --name lr-low --config train/configs/default.yaml")


@pytest.mark.parametrize("field, value, problem", [
    ("epochs", "three", "a whole number"),
    ("lr", "abc", "a number"),
    ("lr", "nan", "a finite number"),
    ("dataset", "no-such-set", "is not one of"),
    ("network", "deleted_net", "is not one of"),
    ("name", "a/b", "no '/'"),
    ("name", "../up", "no '/'"),
    ("name", "", "required"),
    ("name", "x\x00y", "control characters"),
    ("optimiser", "rmsprop", "is not one of"),
    ("trackers", ["tensorboard", "neptune"], "unknown"),
    ("overrides", "--resume=last", "not key=value"),
    ("overrides", "epochs", "not key=value"),
    ("overrides", "a.b=1\n$(rm -rf ~)=2", "not key=value"),
])
def test_a_bad_value_is_named_next_to_its_field(field, value, problem):
    form = {"name": "ok", field: value}
    checked = command_from_form(form)
    assert problem in checked.errors[field]
    assert set(checked.errors) == {field}


def test_a_value_cannot_become_an_option_or_a_second_override():
    checked = command_from_form({"name": "x", "rotation": "5 --resume last"})
    assert "rotation" in checked.errors
    checked = command_from_form({"name": "x", "overrides": "augment.rotation=5 --dev"})
    assert checked.arguments[0:2] == ["--name", "x"]
    assert "augment.rotation=5 --dev" in checked.arguments  # one argument: training's validator refuses it


def test_a_taken_name_is_refused(tmp_path):
    from common.run_folder import runs_root
    (runs_root() / "taken-20260101-000000").mkdir(parents=True)
    assert "exists or is queued" in command_from_form({"name": "taken"}).errors["name"]
    assert "exists or is queued" in command_from_form({"name": "queued"}, taken={"queued"}).errors["name"]


@pytest.mark.slow
def test_training_s_validator_decides_and_its_message_lands_next_to_the_field():
    assert validate(command_from_form({"name": "fine", "dev": "on", "epochs": "2"})).errors == {}
    checked = validate(command_from_form({"name": "x", "hflip": "1.5"}))
    assert "augment.hflip" in checked.errors["hflip"]
    checked = validate(command_from_form({"name": "x", "overrides": "optim.lrr=3"}))
    assert "lrr" in checked.errors["overrides"]
    checked = validate(command_from_form({"name": "x", "overrides": "augment.rotation=5 --dev"}))
    assert checked.errors and "augment.rotation" in " ".join(checked.errors.values())


@pytest.mark.slow
def test_the_page_shows_the_problems_and_queues_nothing(signed):
    response = signed.post("/launch", {"name": "bad", "epochs": "0"})
    assert response.status_code == 400
    assert "epochs" in errors_on_page(response.text)["epochs"]
    assert "pipenv run train --name bad epochs=0 --no-progress" in response.text.replace("&#39;", "'")
    assert signed.studio.store.all() == []


def test_unticking_every_tracker_means_none_and_a_field_that_is_not_on_the_form_means_the_recipe_s():
    assert "log.trackers=[]" in command_from_form({"name": "x", "trackers": []}).arguments
    assert not any(a.startswith("log.trackers") for a in command_from_form({"name": "x"}).arguments)


def test_long_values_are_refused_before_they_are_looked_at():
    assert "at most" in command_from_form({"name": "x", "overrides": "a=1\n" * 5000}).errors["overrides"]
    assert "at most" in command_from_form({"name": "x", "lr": "1" * 2000}).errors["lr"]
