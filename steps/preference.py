"""The optional preference stage: DPO or KTO from reviewed feedback on top of the SFT adapter."""

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import log_metadata, step

from drugslm_core.config import CleaningSettings, DataSettings, PreferenceSettings, ValidationSettings
from drugslm_core.data.formatting import InstructionDataset
from drugslm_core.modeling.loading import load_tokenizer
from drugslm_core.modeling.preference import build_preference_data, preference_tune
from drugslm_core.modeling.training import TrainingOutcome
from materializers import TrainingOutcomeMaterializer


@step(experiment_tracker=True, output_materializers=TrainingOutcomeMaterializer)
def preference(
    sft: TrainingOutcome, eval_split: InstructionDataset, settings: PreferenceSettings,
    data: DataSettings, cleaning: CleaningSettings, validation: ValidationSettings,
) -> Annotated[TrainingOutcome, "adapter"]:
    """Feedback exports → the same clean + GX gate → DPO pairs / KTO thumbs → tuned adapter (SFT adapter as reference)."""
    examples = build_preference_data(
        data.feedback, cleaning, validation, load_tokenizer(sft.base_model), data.system_prompt, data.domain_tag,
        held_out_focus={e.focus for e in eval_split.examples},
    )
    outcome = preference_tune(sft, examples, settings, Path(tempfile.mkdtemp(prefix="drugslm-preference-")))
    summary = outcome.preference or {"method": "skipped", "examples": 0}
    log_metadata({"preference": summary, "feedback_reasons": examples.reasons})
    mlflow.log_params({"preference.method": summary["method"], "preference.examples": summary["examples"]})
    mlflow.log_metrics({f"preference.{k}": float(v) for k, v in summary.items()
                        if isinstance(v, int | float) and not isinstance(v, bool)})
    return outcome
