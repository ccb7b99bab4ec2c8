"""Base-model provisioning, quantized loading, LoRA and training."""
