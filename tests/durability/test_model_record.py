"""A model record keeps the full network config its model was created with, so redefining a
preset later cannot change (or orphan the checkpoints of) an existing model; records stored before
that resolve their preset as it was defined then."""

import json

import pytest

from model import config as config_module
from model.config import make_config
from service.stores import ModelRecord
from service.stores.base import PRESETS_OF_UNVERSIONED_RECORDS

# config digest of the default preset "mnist" as defined until 2026-11-27 (384/768 units in layers
# 2/3), computed with that version's model/config.py: its checkpoints carry this digest
MNIST_BEFORE_2026_11_27 = "a245498365d30ada88036077274beeb13988d8275ccc707e5267f3a41cf275e2"


def test_mnist_wide_is_what_mnist_meant_for_unversioned_records():
    assert PRESETS_OF_UNVERSIONED_RECORDS["mnist"] == "mnist-wide"
    assert make_config("mnist-wide").digest() == MNIST_BEFORE_2026_11_27
    assert make_config("mnist").digest() != MNIST_BEFORE_2026_11_27


def test_an_unversioned_record_resolves_its_preset_as_defined_then():
    old = ModelRecord.from_dict({"name": "m", "preset": "mnist", "config": {}, "seed": 3, "created_at": 1.0})
    assert old.preset == "mnist" and old.seed == 3
    assert old.network_config().digest() == MNIST_BEFORE_2026_11_27
    shallow = ModelRecord.from_dict({"name": "s", "preset": "mnist-shallow", "config": {"readout": {"ridge": 0.001}}})
    assert shallow.network_config() == make_config("mnist-shallow", {"readout": {"ridge": 0.001}})


def test_a_record_keeps_its_network_when_the_preset_is_redefined(monkeypatch):
    record = ModelRecord(name="m", preset="mnist", config={"readout": {"solve_every": 500}})
    created_with = make_config("mnist", {"readout": {"solve_every": 500}})
    assert record.network_config() == created_with
    stored = record.to_dict()
    redefined = {**config_module.PRESETS["mnist"], "layers": [{"channels": 32, "kernel": 5}]}
    monkeypatch.setitem(config_module.PRESETS, "mnist", redefined)
    assert make_config("mnist").digest() != created_with.digest()       # the preset did change
    assert ModelRecord.from_dict(stored).network_config() == created_with
    assert ModelRecord.from_dict(json.loads(json.dumps(stored))) == record    # as the stores keep it


def test_an_unresolvable_old_record_can_be_listed_and_fails_where_it_is_used():
    record = ModelRecord.from_dict({"name": "m", "preset": "retired-preset"})
    assert record.name == "m"
    with pytest.raises(ValueError, match="unknown preset 'retired-preset'"):
        record.network_config()
