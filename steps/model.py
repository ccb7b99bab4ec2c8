from typing import Annotated

from zenml import step

from drugslm_core.config import BaseModelSettings
from drugslm_core.modeling.base_model import BaseModelRef, provision_base_model


@step(enable_cache=False)  # cheap when provisioned; must re-check the cache folder every run
def base_model(settings: BaseModelSettings) -> Annotated[BaseModelRef, "base_model"]:
    """Provision the base model offline (dequantized once into a hash-keyed cache)."""
    return provision_base_model(settings)
