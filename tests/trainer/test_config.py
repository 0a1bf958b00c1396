"""input.json normalisation: defaults, unknown keys named, _comment ignored."""

from __future__ import annotations

import pytest

from dpconv.errors import ConfigError
from dpconv.trainer.config import normalize

from .conftest import TINY


def _cfg(**training):
    import copy

    c = copy.deepcopy(TINY)
    c["training"]["training_data"] = {"systems": ["x"], "_comment": "ignored"}
    c["training"].update(training)
    return c


def test_defaults_follow_deepmd():
    out = normalize(_cfg())
    d, f = out["model"]["descriptor"], out["model"]["fitting_net"]
    assert d["type_one_side"] is False and d["activation_function"] == "tanh"
    assert f["resnet_dt"] is True and out["model"]["data_stat_nbatch"] == 10
    assert out["training"]["training_data"]["batch_size"] == "auto"
    assert out["training"]["max_ckpt_keep"] == 5
    assert out["optimizer"]["type"] == "Adam"
    assert "_comment" not in out["training"]
    assert "validation_data" not in out["training"]
    assert out["model"]["precision_resolved"] == "float64"


def test_unknown_keys_are_all_named():
    c = _cfg()
    c["model"]["descriptor"]["attn_layer"] = 2
    c["training"]["foo"] = 1
    c["bogus"] = {}
    with pytest.raises(ConfigError) as ei:
        normalize(c)
    msg = str(ei.value)
    assert "model.descriptor.attn_layer" in msg and "training.foo" in msg and "bogus" in msg


def test_unsupported_values_are_named():
    c = _cfg()
    c["model"]["descriptor"]["type"] = "se_atten"
    c["learning_rate"]["type"] = "cosine"
    with pytest.raises(ConfigError, match=r"model.descriptor.type='se_atten'.*learning_rate.type='cosine'"):
        normalize(c)


def test_missing_and_bad_values():
    c = _cfg()
    del c["model"]["type_map"]
    with pytest.raises(ConfigError, match="model.type_map"):
        normalize(c)
    c = _cfg()
    c["model"]["descriptor"]["sel"] = [1, 2, 3]
    with pytest.raises(ConfigError, match="sel"):
        normalize(c)
    c = _cfg()
    c["model"]["descriptor"]["rcut_smth"] = 9.0
    with pytest.raises(ConfigError, match="rcut_smth"):
        normalize(c)


def test_sel_auto_ratio_and_float32():
    c = _cfg()
    c["model"]["descriptor"]["sel"] = "auto:1.2"
    c["model"]["descriptor"]["precision"] = "float32"
    c["model"]["fitting_net"]["precision"] = "float32"
    out = normalize(c)
    assert out["model"]["precision_resolved"] == "float32"


def test_batch_size_rules():
    from dpconv.trainer.data import batch_size_for

    assert batch_size_for("auto", 192) == 1
    assert batch_size_for("auto", 5) == 7
    assert batch_size_for("auto:64", 5) == 13
    assert batch_size_for("max:32", 5) == 6
    assert batch_size_for("filter:100", 192) is None
    assert batch_size_for(4, 192) == 4
    assert batch_size_for([2, 3], 5, index=1) == 3
    with pytest.raises(ConfigError):
        batch_size_for("huge", 5)


def test_learning_rate_schedule():
    from dpconv.trainer.loop import ExpLR

    lr = ExpLR(1e-3, 3.51e-8, 5000, 1_000_000)
    assert lr(0) == 1e-3 and lr(4999) == 1e-3
    assert abs(lr(5000) / 1e-3 - (3.51e-8 / 1e-3) ** (5000 / 1_000_000)) < 1e-12
    short = ExpLR(1e-3, 1e-5, 5000, 40)  # decay_steps ≥ numb_steps → numb_steps//100 + 1 = 1
    assert short.decay_steps == 1 and short(1) < short(0)
    assert abs(short(40) - 1e-5) < 1e-12
