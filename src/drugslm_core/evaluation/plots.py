"""Plots as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io


def loss_curve_png(history: list[tuple[int, float]], title: str = "Training loss (answer tokens)") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=110)
    if history:
        steps, losses = zip(*history)
        axis.plot(steps, losses, marker="o", linewidth=1.5)
    axis.set_xlabel("optimizer step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
