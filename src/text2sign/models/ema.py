"""Exponential moving average of trainable weights, with a decay that warms up.

The prior attempt used a fixed decay of 0.9999 on runs of a few thousand steps, so its "EMA" model was
mostly the random initialisation. Here the decay at update k is min(max_decay, (1 + k) / (10 + k))
(the warm-up used by diffusers' EMAModel and TensorFlow's `num_updates` option): ~0.5 at the start,
0.99 after ~900 updates, and only then approaching max_decay, so the average tracks short runs.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn


class ExponentialMovingAverage:
    """Shadow copies of a module's trainable parameters, keyed by their names in that module."""

    def __init__(self, module: nn.Module, max_decay: float = 0.9999):
        if not 0.0 <= max_decay < 1.0:
            raise ValueError(f"EMA max_decay must be in [0, 1), got {max_decay}")
        self.max_decay = max_decay
        self.num_updates = 0
        self.shadow = {name: parameter.detach().clone().float() for name, parameter in module.named_parameters() if parameter.requires_grad}

    def decay(self) -> float:
        return min(self.max_decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = self.decay()
        parameters = dict(module.named_parameters())
        # One fused call over every tensor, not a Python loop of ~670 lerp_ kernel launches per step.
        # shadow <- decay * shadow + (1 - decay) * param
        torch._foreach_lerp_(list(self.shadow.values()), [parameters[name].detach().float() for name in self.shadow], 1.0 - decay)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        parameters = dict(module.named_parameters())
        for name, shadow in self.shadow.items():
            parameters[name].copy_(shadow.to(parameters[name].dtype))

    @contextlib.contextmanager
    def applied_to(self, module: nn.Module):
        """Temporarily swap the EMA weights into `module` (for sampling or validation), then restore."""
        parameters = dict(module.named_parameters())
        backup = {name: parameters[name].detach().clone() for name in self.shadow}
        self.copy_to(module)
        try:
            yield module
        finally:
            with torch.no_grad():
                for name, saved in backup.items():
                    parameters[name].copy_(saved)

    def to(self, device: torch.device | str) -> "ExponentialMovingAverage":
        self.shadow = {name: shadow.to(device) for name, shadow in self.shadow.items()}
        return self

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {**self.shadow, "__num_updates__": torch.tensor(self.num_updates)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        names = set(state) - {"__num_updates__"}
        missing, unexpected = sorted(set(self.shadow) - names), sorted(names - set(self.shadow))
        if missing or unexpected:
            raise ValueError(f"EMA weights do not match the model: missing {missing[:10]}, unexpected {unexpected[:10]}")
        device = next(iter(self.shadow.values())).device if self.shadow else "cpu"
        self.shadow = {name: state[name].float().to(device) for name in self.shadow}
        self.num_updates = int(state["__num_updates__"]) if "__num_updates__" in state else 0


@contextlib.contextmanager
def evaluation_weights(pipeline: nn.Module, use_ema: bool = True):
    """Eval mode, no gradients and, if `use_ema` and the pipeline has an EMA (`pipeline.ema`), the EMA weights.

    Eval mode matters: in train mode the pipeline drops captions and the text encoder's dropout is live.
    Mode and raw weights are restored in a `finally`, so an error inside (out of memory while sampling, an
    unreadable validation clip) never leaves a training run in eval mode or training the EMA weights.
    """
    was_training = pipeline.training
    ema_context = pipeline.ema.applied_to(pipeline) if (use_ema and pipeline.ema is not None) else contextlib.nullcontext()
    pipeline.eval()
    try:
        with ema_context, torch.no_grad():
            yield pipeline
    finally:
        pipeline.train(was_training)
