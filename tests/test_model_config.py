"""The model's configuration: configs/model/default.yaml is the one source of every default (hyperparameters,
Trainer, callbacks); override files and flags win; the Trainer is built from it; DAGs and the registry follow it."""

from __future__ import annotations

import shutil

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from soundmates.model.config import CONFIG_DIR_ENV, ModelConfig, default_config_file


def _yaml() -> dict:
    return yaml.safe_load(default_config_file().read_text())


def _models(model: type[BaseModel]):
    """``model`` and every nested section model under it."""
    yield model
    for f in model.model_fields.values():
        if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel):
            yield from _models(f.annotation)


def test_a_fresh_load_is_exactly_the_yaml_and_no_field_has_a_code_default():
    assert default_config_file().name == "default.yaml" and default_config_file().parent.name == "model"
    assert ModelConfig.load().model_dump() == _yaml()  # every key of the YAML, nothing added by code
    for model in _models(ModelConfig):
        defaulted = [name for name, f in model.model_fields.items() if not f.is_required()]
        assert defaulted == [], f"{model.__name__} has code defaults: {defaulted}"


def test_a_key_missing_from_the_yaml_is_an_error_not_a_hidden_default(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    data = _yaml()
    del data["temperature"]
    del data["trainer"]["deterministic"]
    (tmp_path / "model" / "default.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    with pytest.raises(ValidationError) as err:
        ModelConfig.load()
    assert "temperature" in str(err.value) and "trainer.deterministic" in str(err.value)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match=CONFIG_DIR_ENV):
        ModelConfig.load()


def test_the_configs_folder_can_be_moved(tmp_path, monkeypatch):
    """An installed package (the Docker image) finds the YAML through $SOUNDMATES_CONFIG_DIR."""
    shutil.copytree(default_config_file().parent, tmp_path / "model")
    text = (tmp_path / "model" / "default.yaml").read_text().replace("\nlr: 0.001\n", "\nlr: 0.005\n")
    (tmp_path / "model" / "default.yaml").write_text(text)
    monkeypatch.setenv(CONFIG_DIR_ENV, str(tmp_path))
    assert ModelConfig.load().lr == 0.005


def test_override_file_then_flags_win_and_sections_merge_key_by_key(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(
        "temperature: 0.2\nmax_epochs: 4\ntrainer:\n  log_every_n_steps: 5\ncallbacks:\n  model_checkpoint:\n    save_top_k: 2\n"
    )
    cfg = ModelConfig.load(p, max_epochs=7, patience=None)  # None = not given
    base = _yaml()
    assert cfg.temperature == 0.2 and cfg.max_epochs == 7 and cfg.patience == base["patience"]
    assert cfg.trainer.log_every_n_steps == 5
    assert cfg.trainer.model_dump() == base["trainer"] | {"log_every_n_steps": 5}
    assert cfg.callbacks.model_checkpoint.save_top_k == 2
    assert cfg.callbacks.early_stopping.model_dump() == base["callbacks"]["early_stopping"]
    p.write_text("trainer:\n  accelerator: gpu\n")
    with pytest.raises(ValidationError, match="accelerator"):
        ModelConfig.load(p)
    p.write_text("callbacks:\n  early_stopping:\n    patience: 3\n")  # patience is the hyperparameter, one place
    with pytest.raises(ValidationError, match="patience"):
        ModelConfig.load(p)


def test_a_stored_config_of_an_older_version_loads_over_the_yaml():
    """Registry versions written before the trainer/callbacks sections existed still load, their values kept."""
    stored = {k: v for k, v in ModelConfig.load(temperature=0.3).model_dump().items() if k not in ("trainer", "callbacks")}
    cfg = ModelConfig.from_stored(stored)
    assert cfg.temperature == 0.3 and cfg.trainer.model_dump() == _yaml()["trainer"]
    with pytest.raises(ValidationError, match="lrr"):
        ModelConfig.from_stored(stored | {"lrr": 1})


def test_the_trainer_and_callbacks_are_built_from_the_config(tmp_path):
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from soundmates.model.train import build_callbacks, build_trainer

    base = _yaml()
    for cfg in (ModelConfig.load(), ModelConfig.load(max_epochs=3, patience=2, monitor="val_mrr")):
        ckpt, stop = build_callbacks(cfg, tmp_path / "ckpt")
        trainer = build_trainer(cfg, [ckpt, stop], work_dir=tmp_path)
        assert trainer.max_epochs == cfg.max_epochs
        assert trainer.early_stopping_callback is stop and trainer.checkpoint_callback is ckpt
        assert isinstance(stop, EarlyStopping) and isinstance(ckpt, ModelCheckpoint)
        assert (stop.monitor, stop.patience, stop.mode) == (
            cfg.monitor,
            cfg.patience,
            base["callbacks"]["early_stopping"]["mode"],
        )
        assert abs(stop.min_delta) == base["callbacks"]["early_stopping"]["min_delta"]
        assert (ckpt.monitor, ckpt.mode, ckpt.save_top_k, ckpt.filename) == (
            cfg.monitor,
            *(base["callbacks"]["model_checkpoint"][k] for k in ("mode", "save_top_k", "filename")),
        )
        assert isinstance(trainer.logger, CSVLogger) and trainer.num_sanity_val_steps == 0
        assert trainer.log_every_n_steps == base["trainer"]["log_every_n_steps"]
        assert not trainer.progress_bar_callback and trainer.num_devices == 1
    # the first config is the YAML's: 30 epochs, patience 5, the validation metric the gate uses (protocol.VAL_METRIC)
    assert (base["max_epochs"], base["patience"], base["monitor"]) == (30, 5, "val_geo_nr_mrr")
    quiet = ModelConfig.load(trainer={"logger": "none"})
    assert build_trainer(quiet, [], work_dir=tmp_path).logger is None


def test_the_registry_stores_exactly_the_config_used(trained, settings):
    from soundmates.model.registry import ModelRegistry

    reg = ModelRegistry(settings.models_dir)
    version = reg.register(trained, metrics={}, data_version=1, feature_schema={})["version"]
    assert reg.meta(version)["config"] == trained.config.model_dump()
    loaded = reg.load(version)
    assert loaded.model.cfg == trained.config and loaded.preprocessor.cfg == trained.config
    assert trained.config.max_epochs == 3 and trained.config.patience == 2  # the fixture's overrides, not the YAML's


def test_dag_params_hold_no_model_defaults(dagbag):
    """A DAG passes only the model overrides a user set; left empty, the YAML decides."""
    fields = set(ModelConfig.model_fields)
    for dag_id in ("soundmates_bootstrap", "soundmates_retrain"):
        params = dagbag.dags[dag_id].params
        # bootstrap's batch_size is the ingest's (references per task), not the model's
        named = {k for k in params if k in fields} - ({"batch_size"} if dag_id == "soundmates_bootstrap" else set())
        assert named == {"max_epochs", "seed"}, dag_id
        model_params = {k: params.get_param(k).value for k in named}
        assert all(v is None for v in model_params.values()), (dag_id, model_params)
        resolved = params.validate()  # empty is valid; a set value still is checked
        assert resolved["max_epochs"] is None and resolved["seed"] is None


def test_the_train_step_passes_only_set_overrides(monkeypatch):
    import soundmates.pipelines as pipelines
    from soundmates.orchestration import steps

    seen: list[dict] = []
    monkeypatch.setattr(pipelines, "train_model", lambda **hp: seen.append(hp) or {"version": "v"})
    steps.train(max_epochs=None, seed=None)
    steps.train(max_epochs=4, seed=None)
    assert seen == [{}, {"max_epochs": 4}]
