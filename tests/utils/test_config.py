"""Configs as data: nested round trips through JSON, config files, flat names, and flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from irralctl.errors import ConfigError, InputError
from irralctl.generation.config import DecodeConfig, GenerateConfig
from irralctl.heatmaps.config import HeatmapConfig
from irralctl.training.config import TrainConfig
from irralctl.utils.config import (
    flatten,
    from_dict,
    from_flat,
    leaf_paths,
    load_config_file,
    save_config,
    to_flags,
    to_jsonable,
    unflatten,
)


def _train(**kw) -> TrainConfig:
    return from_flat(TrainConfig, dataset=Path("data/iu"), out=Path("runs/x"), **kw)


def test_nested_config_round_trips_through_json():
    cfg = _train(lr=3e-4, d_model=64, backbone="tiny", visual_weights=None, text_encoder=Path("bert"), memory=False)
    data = json.loads(json.dumps(to_jsonable(cfg)))
    back = from_dict(TrainConfig, data)
    assert back == cfg
    assert isinstance(back.loss.text_encoder, Path) and isinstance(back.dataset, Path)
    assert back.optim.lr == 3e-4 and back.model.d_model == 64 and back.model.memory is False
    heat = HeatmapConfig(checkpoint=Path("run"), compare=(Path("a"), Path("b")), words=("heart", "pleural effusion"),
                         out=Path("maps"), study=Path("s"))
    again = from_dict(HeatmapConfig, json.loads(json.dumps(to_jsonable(heat))))
    assert again == heat and again.words == ("heart", "pleural effusion") and again.compare == (Path("a"), Path("b"))


def test_unknown_and_mistyped_keys_are_named():
    data = to_jsonable(_train())
    data["optim"]["learning_rate"] = 1
    with pytest.raises(ConfigError, match="optim.learning_rate"):
        from_dict(TrainConfig, data)
    data = to_jsonable(_train())
    data["optim"]["epochs"] = "ten"
    with pytest.raises(ConfigError, match="'optim.epochs' must be an integer"):
        from_dict(TrainConfig, data)
    data = to_jsonable(_train())
    data["model"] = 3
    with pytest.raises(ConfigError, match="'model' must be a table"):
        from_dict(TrainConfig, data)
    assert from_dict(TrainConfig, {**to_jsonable(_train()), "unknown": 1}, strict=False) == _train()


def test_flat_names_are_unique_and_reach_nested_fields():
    paths = leaf_paths(TrainConfig)
    assert paths["lr"] == ("optim", "lr") and paths["d_model"] == ("model", "d_model") and paths["seed"] == ("seed",)
    assert from_flat(TrainConfig, dataset=Path("d"), out=Path("o"), lr=0.5).optim.lr == 0.5
    with pytest.raises(ConfigError, match="unknown option.*nope"):
        from_flat(TrainConfig, dataset=Path("d"), nope=1)
    assert unflatten(flatten({"a": {"b": 1, "c": {"d": 2}}, "e": 3})) == {"a": {"b": 1, "c": {"d": 2}}, "e": 3}


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".toml"])
def test_config_files_of_every_kind(tmp_path, suffix):
    text = {
        ".json": '{"dataset": "data/iu", "optim": {"lr": 0.001, "epochs": 5}, "model": {"backbone": "tiny"}}',
        ".yaml": "dataset: data/iu\noptim:\n  lr: 0.001\n  epochs: 5\nmodel:\n  backbone: tiny\n",
        ".toml": 'dataset = "data/iu"\n[optim]\nlr = 0.001\nepochs = 5\n[model]\nbackbone = "tiny"\n',
    }[suffix]
    (tmp_path / f"c{suffix}").write_text(text)
    cfg = from_dict(TrainConfig, load_config_file(tmp_path / f"c{suffix}"))
    assert cfg.optim.lr == 0.001 and cfg.optim.epochs == 5 and cfg.model.backbone == "tiny"
    assert cfg.dataset == Path("data/iu") and cfg.model.d_model == 512  # absent keys keep their defaults


def test_a_saved_config_json_loads_back(tmp_path):
    cfg = _train(epochs=3, tokenizer="legacy")
    save_config(tmp_path / "config.json", cfg, model={"vocab_size": 12})
    assert from_dict(TrainConfig, load_config_file(tmp_path / "config.json")) == cfg


def test_bad_config_files(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        load_config_file(tmp_path / "none.json")
    (tmp_path / "bad.yaml").write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="not a readable yaml config"):
        load_config_file(tmp_path / "bad.yaml")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="table of options"):
        load_config_file(tmp_path / "list.json")


def test_to_flags_names_only_what_differs_from_the_defaults():
    gen = GenerateConfig(checkpoint=Path("run"), out=Path("p.jsonl"), dataset=Path("data"),
                         decoding=DecodeConfig(beam_size=5, no_repeat_ngram=3), overwrite=True)
    assert to_flags(gen) == ["--checkpoint", "run", "--out", "p.jsonl", "--dataset", "data", "--beam-size", "5",
                             "--no-repeat-ngram", "3", "--overwrite"]
    flags = to_flags(_train(augment=False, no_image=True, lr=0.002))
    assert flags[:1] == ["data/iu"] and "--no-augment" in flags and "--no-image" in flags
    assert flags[flags.index("--lr") + 1] == "0.002" and "--d-model" not in flags


def test_options_added_later_keep_their_old_meaning_in_saved_configs():
    """A config irralctl saved before an option existed loads with what the run did then (the
    class's ADDED table); a user's config file without it takes today's default."""
    from irralctl.model.config import ModelConfig
    from irralctl.runs.loaded import model_config_of
    from irralctl.training.config import TrainConfig

    assert ModelConfig().context_words is True
    assert from_dict(ModelConfig, {}).context_words is True
    assert from_dict(ModelConfig, {}, saved=True).context_words is False
    assert from_dict(ModelConfig, {"context_words": True}, saved=True).context_words is True
    assert model_config_of({"model_config": {"vocab_size": 10}}).context_words is False
    assert from_dict(ModelConfig, {}, saved=True).context_decisions is False  # an option added later still
    assert ModelConfig().tiny_norm == "channel" and from_dict(ModelConfig, {}, saved=True).tiny_norm == "group"
    # Nested: a saved training config fills the model's added options too.
    saved = from_dict(TrainConfig, {"dataset": "data", "model": {"acl": True}}, saved=True)
    assert saved.model.context_words is False
    assert from_dict(TrainConfig, {"dataset": "data", "model": {"acl": True}}).model.context_words is True
