"""Fixtures shared by the fast unit tests.

The base model's tokenizer is provisioned once per session: the cache under
``~/.cache/drugslm`` makes this ~0.1 s (plus ~5 s for importing transformers)
when present, ~25 s the first time.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def base_model_ref() -> Any:
    from drugslm_core.config import BaseModelSettings
    from drugslm_core.modeling.base_model import provision_base_model

    return provision_base_model(BaseModelSettings())


@pytest.fixture(scope="session")
def tokenizer(base_model_ref: Any) -> Any:
    from drugslm_core.modeling.loading import load_tokenizer

    return load_tokenizer(base_model_ref)

