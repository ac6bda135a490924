"""The pull-back: after the run, the best checkpoint moved along the straight line from the model handed over.

The membership attack reads each forget document's loss against documents of its kind never seen. The ascent
stops a row at the level, but a step moves every row at once, and the last steps carry the members past the
references (attack AUC under 0.5) as often as short of them. Along theta0 + alpha (theta* - theta0) the
members' loss moves steeply near alpha = 1, while the task metrics and what the retain set does not cover move
slowly: a few selection passes find the alpha at which the attack no longer tells them apart (by bisection on
the side of 0.5 its AUC falls), and the selection's score decides whether any of them beats the checkpoint.

With LoRA only the adapters' B matrices move (their start is zero): theta0 + alpha B A, the adapter's
product scaled by alpha. Full-parameter training keeps the start and the best checkpoint of every trained
weight in host memory, in the checkpoint's dtype (two copies of the model's weights in each process).
"""

from __future__ import annotations

from typing import Callable

import torch


def pulled_parameters(model, lora: bool) -> list[str]:
    """The names of the weights the line moves: every trainable one, or LoRA's B matrices alone (scaling B
    scales the adapter's product; scaling A too would scale it by alpha squared)."""
    return [name for name, p in model.named_parameters() if p.requires_grad and (not lora or "lora_B" in name)]


def snapshot(model, names: list[str], dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A host copy of the named weights in ``dtype``: the checkpoint's (a bfloat16 model's start is exact in it,
    and the kept checkpoint is saved in it anyway), so that each process holds 4 bytes a parameter, not 8."""
    wanted = set(names)
    return {name: p.detach().to("cpu", dtype, copy=True) for name, p in model.named_parameters()
            if name in wanted}


@torch.no_grad()
def place(model, initial: dict[str, torch.Tensor], best: dict[str, torch.Tensor], alpha: float) -> None:
    """Set the named weights to initial + alpha (best - initial), in their own dtype and device."""
    for name, p in model.named_parameters():
        if name in initial:
            start = initial[name].float()
            p.copy_((start + alpha * (best[name].float() - start)).to(p.device, p.dtype))


def next_alpha(near: float, far: float) -> float:
    return (near + far) / 2


def search(model, initial: dict, best_weights: dict, best_score, score_at: Callable[[float], object],
           time_left: Callable[[], bool], passes: int, span: float) -> list[tuple[float, float | None]]:
    """Up to ``passes`` selection passes along the line (``score_at(alpha)`` places nothing: it scores and keeps
    the model as it is, saving it when the selection ranks it best). The first goes to the far end, 1 - span
    when the checkpoint's members sit past their references (AUC < 0.5), 1 + span when short of them; if the
    attack has changed side there, the rest bisect the bracket. Returns the (alpha, AUC) pairs tried."""
    auc = best_score.membership_auc
    tried: list[tuple[float, float | None]] = []
    if auc is None or auc == 0.5 or passes < 1:
        return tried
    side = 1.0 if auc > 0.5 else -1.0
    near, far = 1.0, 1.0 + span if auc > 0.5 else 1.0 - span
    alpha = far
    for _ in range(passes):
        if not time_left():
            break
        place(model, initial, best_weights, alpha)
        score = score_at(alpha)
        now = score.membership_auc
        tried.append((alpha, now))
        if now is None:
            break
        if (now - 0.5) * side > 0:  # still on the checkpoint's side of 0.5
            if alpha == far:  # no crossing within the span
                break
            near = alpha
        elif now == 0.5:
            break
        else:
            far = alpha
        alpha = next_alpha(near, far)
    return tried
