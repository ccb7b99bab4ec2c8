"""Plots as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io


def loss_curve_png(
    history: list[tuple[int, float]],
    title: str = "Training loss (answer tokens)",
    eval_history: list[tuple[int, float]] | None = None,
    best_step: int | None = None,
) -> bytes:
    """Train loss per logged step; eval loss on the validation split and the kept (best) step when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=110)
    if history:
        steps, losses = zip(*history)
        axis.plot(steps, losses, marker="o", linewidth=1.5, label="train")
    if eval_history:
        steps, losses = zip(*eval_history)
        axis.plot(steps, losses, marker="s", linewidth=1.5, label="validation")
    if best_step is not None:
        axis.axvline(best_step, color="grey", linestyle="--", linewidth=1, label=f"kept: step {best_step}")
    if eval_history or best_step is not None:
        axis.legend(fontsize=8)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
