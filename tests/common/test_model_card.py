"""The model card's one owner: the documented layout, read back exactly, and refused when damaged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from common.errors import UserError
from common.model_card import ModelCard, read_card_file

LEGACY = Path(__file__).resolve().parent.parent / "data" / "legacy" / "card_v1.json"
"""A card written by `pipenv run export` before the card had a typed owner (schema_version 1)."""


def test_a_card_exported_before_the_typed_owner_reads_and_writes_the_same_layout():
    card = read_card_file(LEGACY)
    assert card.name.startswith("digits_cnn-") and card.class_names == tuple(str(d) for d in range(10))
    assert card.contract.shape == (1, 16, 16) and card.source.run == card.name and card.training.best
    assert card.to_dict() == json.loads(LEGACY.read_text())  # every field kept, nothing added


def damaged(change) -> dict:
    data = json.loads(LEGACY.read_text())
    change(data)
    return data


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(schema_version=2), r"schema_version 2; this code reads 1"),
    (lambda d: d.pop("class_names"), r"incomplete model card: class_names"),
    (lambda d: d["input"].pop("contract"), r"input\.contract: missing"),
    (lambda d: d["network"].pop("hash"), r"network\.hash: missing"),
    (lambda d: d["network"]["config"]["input"].update(height=32), r"does not hash to network\.hash"),
    (lambda d: d["input"]["contract"].update(height=32), r"input\.contract .* differs from the card's network config"),
    (lambda d: d["source"].update(owner="me"), r"source: unknown field\(s\) \['owner'\]"),
    (lambda d: d.update(training=[1]), r"training: expected a mapping"),
])
def test_a_damaged_card_is_refused_naming_the_field(change, message):
    with pytest.raises(UserError, match=message):
        ModelCard.from_dict(damaged(change), "m.json")


def test_a_card_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "m.json"
    path.write_text("{not json")
    with pytest.raises(UserError, match=r"m\.json: the model card is not valid JSON"):
        read_card_file(path)


def test_a_card_names_the_list_versions_its_run_trained_on_and_older_cards_read_without_them():
    lists = {"train": {"path": "data/digits/lists/train.txt", "sha256": "ab" * 32, "samples": 1253, "role": "train",
                       "version": 2}}
    card = read_card_file(LEGACY)
    assert card.source.lists is None and "lists" not in card.to_dict()["source"]
    named = card.with_changes(source=replace(card.source, lists=lists))
    assert ModelCard.from_dict(named.to_dict(), "m.json").source.lists == lists
