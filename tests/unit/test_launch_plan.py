"""The ``accelerate launch`` plan the finetune step runs when ``training.accelerate.enabled``.

No GPU here: the multi-GPU plan is checked as accelerate's own CLI parser reads it;
tests/integration/test_training_modes.py runs the single-process CPU plan for real.
"""

from __future__ import annotations

from pathlib import Path

from drugslm_core.config import AccelerateSettings, load_settings_file

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_multi_gpu_plan() -> None:
    from drugslm_core.modeling.launch import launch_plan

    settings = AccelerateSettings(enabled=True, num_processes=4, multi_gpu=True, mixed_precision="bf16",
                                  main_process_port=29600, extra_args=["--gpu_ids", "all"])
    plan = launch_plan(settings, Path("/tmp/job/job.pkl"), cuda_available=True)
    assert plan.num_processes == 4 and plan.multi_gpu and not plan.cpu
    assert plan.num_machines == 1 and plan.mixed_precision == "bf16" and plan.main_process_port == 29600
    assert plan.gpu_ids == "all" and plan.dynamo_backend == "no"
    assert plan.module and plan.training_script == "drugslm_core.modeling.launch"
    assert plan.training_script_args == ["/tmp/job/job.pkl"]


def test_cpu_plan_forces_cpu_and_no_mixed_precision() -> None:
    from drugslm_core.modeling.launch import launch_plan

    plan = launch_plan(AccelerateSettings(enabled=True), Path("job.pkl"), cuda_available=False)
    assert plan.cpu and not plan.multi_gpu and plan.num_processes == 1 and plan.mixed_precision == "no"


def test_gpu_run_config_plans_one_process_per_requested_gpu() -> None:
    import yaml

    document = yaml.safe_load((CONFIGS / "k8s-gpu.yaml").read_text())
    accelerate = load_settings_file(CONFIGS / "k8s-gpu.yaml").training.accelerate
    gpus = int(document["steps"]["finetune"]["settings"]["orchestrator"]["pod_settings"]["resources"]["limits"]["nvidia.com/gpu"])
    assert accelerate.num_processes == gpus
    assert accelerate.multi_gpu == (gpus > 1)
