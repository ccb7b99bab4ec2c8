"""With the bundled corpus off, the run's own held-out questions feed the generation metrics.

A user's medical QA data (diseases, not the bundled drug leaflets) is split as the
pipeline splits it; a real 4-bit SmolLM2 with an untrained LoRA answers the eval
split's questions, which are scored against the split's own answers. Small slice
(4 questions, 12 new tokens) so that it runs in about a minute on CPU.
"""

from __future__ import annotations

import pytest

from drugslm_core.config import BaseModelSettings, DataSettings, EvaluationSettings, SplitSettings
from drugslm_core.data.formatting import build_instruction_dataset
from drugslm_core.data.records import QARecord, RecordBatch
from drugslm_core.data.splits import split_three_ways
from drugslm_core.evaluation.benchmark import load_benchmark
from drugslm_core.evaluation.compare import EvaluationResult, evaluate_adapter
from drugslm_core.evaluation.metrics import rouge_l
from drugslm_core.evaluation.promotion import decide_for_evaluation
from drugslm_core.modeling.base_model import provision_base_model
from drugslm_core.modeling.loading import load_tokenizer
from tests.lora_adapters import save_lora_adapter

DISEASES = {
    "Asthma": "Asthma is a long-term disease of the airways that causes wheezing, breathlessness and chest tightness.",
    "Gout": "Gout is a form of arthritis caused by uric acid crystals in a joint, often the big toe.",
    "Anemia": "Anemia means the blood has too few healthy red blood cells to carry enough oxygen.",
    "Psoriasis": "Psoriasis is a skin disease with red, scaly patches that come and go.",
    "Migraine": "Migraine is a headache disorder with attacks of throbbing pain, often with nausea.",
    "Glaucoma": "Glaucoma is a group of eye diseases that damage the optic nerve, often from high eye pressure.",
    "Celiac disease": "Celiac disease is an immune reaction to gluten that damages the small intestine.",
    "Shingles": "Shingles is a painful rash caused by the chickenpox virus waking up again.",
}
SETTINGS = EvaluationSettings(max_eval_examples=4, generation_samples=0, heldout_questions=4, max_new_tokens=12,
                              bootstrap_samples=200)


def user_records() -> RecordBatch:
    records = []
    for n, (disease, answer) in enumerate(DISEASES.items()):
        for k, (question, text) in enumerate([(f"What is {disease.lower()}?", answer),
                                              (f"Who gets {disease.lower()}?", f"{disease} can affect anyone.")]):
            records.append(QARecord(id=f"user-{n}-{k}", question=question, answer=text, focus=disease,
                                    source="diseases.csv", locator=f"row {2 * n + k + 2}", section="overview"))
    return RecordBatch(records=records)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory: pytest.TempPathFactory) -> tuple[EvaluationResult, list]:
    import torch

    root = tmp_path_factory.mktemp("heldout")
    base = provision_base_model(BaseModelSettings())
    data = DataSettings(include_sample_corpus=False)
    dataset = build_instruction_dataset(user_records(), load_tokenizer(base), data.system_prompt, data.domain_tag)
    _, _, eval_split = split_three_ways(dataset, SplitSettings(eval_fraction=0.25, validation_fraction=0.0))
    assert eval_split.examples, "the split must hold out some diseases"
    torch.manual_seed(0)
    save_lora_adapter(base, root / "tuned")
    result = evaluate_adapter(root / "tuned", base, eval_split, load_benchmark(), SETTINGS, 256, "bfloat16")
    return result, eval_split.examples


def test_heldout_questions_feed_the_generation_metrics(evaluation) -> None:  # type: ignore[no-untyped-def]
    result, examples = evaluation
    references = {example.id: example for example in examples}
    tuned = result.models["tuned"]
    assert tuned.answers and {a.item_set for a in tuned.answers} == {"heldout"}  # the bundled benchmark is off here
    for answer in tuned.answers:
        example = references[answer.id]
        assert answer.question == example.question and answer.drug == example.focus and answer.held_out is True
        assert answer.scores["rouge_l"] == pytest.approx(rouge_l(answer.response, example.answer))
        assert "key_fact_recall" not in answer.scores  # user data has no key facts
    means = tuned.means_by_set["heldout"]
    assert means["rouge_l"] == pytest.approx(sum(a.scores["rouge_l"] for a in tuned.answers) / len(tuned.answers))
    assert {"rouge_l", "semantic_similarity", "invented_doses", "unknown_drugs", "dosage_without_advice"} <= set(means)
    compared = {(c.metric, c.item_set) for c in result.comparisons if c.other == "base"}
    assert {("rouge_l", "heldout"), ("semantic_similarity", "heldout"), ("unknown_drugs", "heldout")} <= compared
    assert result.heldout is not None and result.heldout.startswith("held-out eval split")


def test_heldout_answers_feed_the_safety_checks(evaluation) -> None:  # type: ignore[no-untyped-def]
    result, _ = evaluation
    decision = decide_for_evaluation(result)
    check = next(c for c in decision.checks if c.name == "unknown_drugs vs base")
    assert f"/{len(result.models['tuned'].answers)} (" in check.detail  # rates over the held-out answers
    assert check.passed and check.p_value == 1.0  # an untrained LoRA answers exactly like the base: no discordant pair
