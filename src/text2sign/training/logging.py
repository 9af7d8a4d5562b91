"""Where a run's numbers go: a tqdm bar or plain lines, an always-on JSONL file, and wandb when asked.

Only rank 0 builds a RunLogger with enabled=True; other ranks get a silent one, so the loop never
branches on rank to log. On a terminal a bar shows progress; off one (a cluster job's log file) the bar's
redraws, up to ten a second for the whole run, would bury the log, so each logged row is one plain line
instead (nanoGPT's `iter 100: loss ...`).
"""

from __future__ import annotations

import json
import netrc
import os
import sys
import time
from pathlib import Path

from tqdm.auto import tqdm


def wandb_login_available() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class RunLogger:
    def __init__(self, config, output_dir: Path, enabled: bool, total_steps: int, initial_step: int = 0):
        self.enabled = enabled
        self.wandb_run = None
        if not enabled:
            return
        output_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_file = open(output_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.started = time.time()
        self.total_steps = total_steps
        self.last_row = (initial_step, self.started)  # (step, time) of the last plain line, for its time per step
        # tqdm draws on stderr: it is the bar's stream that must be a terminal.
        self.bar = tqdm(total=total_steps, initial=initial_step, desc="training", unit="step", dynamic_ncols=True) if sys.stderr.isatty() else None
        if config.wandb:
            self.wandb_run = self._start_wandb(config, output_dir)

    def _start_wandb(self, config, output_dir: Path):
        import wandb

        mode = os.environ.get("WANDB_MODE", "online")
        if mode not in ("offline", "disabled") and not wandb_login_available():
            self.warn("wandb: no login found (WANDB_API_KEY or `wandb login`); logging offline instead, upload later with `wandb sync`")
            mode = "offline"
        try:
            return wandb.init(project=config.wandb_project, name=config.wandb_run_name, config=config.to_dict(), dir=str(output_dir), mode=mode)
        except Exception as error:  # noqa: BLE001 - the issue asks that a wandb failure never stops training
            self.warn(f"wandb could not start ({type(error).__name__}: {error}); training continues, metrics go to metrics.jsonl")
            return None

    def info(self, message: str) -> None:
        if self.enabled:
            tqdm.write(message)

    def warn(self, message: str) -> None:
        if self.enabled:
            tqdm.write(f"WARNING: {message}")

    def log(self, metrics: dict, step: int) -> None:
        if not self.enabled:
            return
        now = time.time()
        row = {"step": step, "elapsed_s": round(now - self.started, 2), **metrics}
        self.metrics_file.write(json.dumps(row) + "\n")
        self.metrics_file.flush()
        if self.wandb_run is not None:
            self.wandb_run.log(metrics, step=step)
        if self.bar is not None:
            if "loss" in metrics:
                self.bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
            return
        values = ", ".join(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}" for name, value in metrics.items())
        last_step, last_time = self.last_row
        timing = ""
        if "loss" in metrics:  # a training row: the time per step since the last one (a validation row has none)
            timing = f", {1000 * (now - last_time) / (step - last_step):.0f} ms/step" if step > last_step else ""
            self.last_row = (step, now)
        print(f"step {step}/{self.total_steps}: {values}{timing}", flush=True)

    def progress(self, step: int) -> None:
        """Advance the bar; the loss and learning rate it shows come from the logged rows (reading them every step
        would wait for the GPU every step)."""
        if self.enabled and self.bar is not None:
            self.bar.update(step - self.bar.n)

    def log_videos(self, paths: list[Path], step: int) -> None:
        """Samples as wandb.Video from the GIF files already written (no moviepy needed)."""
        if self.enabled and self.wandb_run is not None:
            import wandb

            self.wandb_run.log({f"samples/{path.stem}": wandb.Video(str(path), format="gif") for path in paths}, step=step)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        self.metrics_file.close()
        if self.wandb_run is not None:
            self.wandb_run.finish()
