"""Noise schedules and samplers: DDPM, DDIM and DPM-Solver++(2M) behind one API.

All samplers share one noise-schedule core, `Scheduler`: betas -> alpha_bar, the forward process
(`add_noise`), the v target, SNR, timestep spacing, the conversion of any model output to (x_0, eps),
clipping and config save/load. A sampler only adds `step`. The pipeline swaps samplers with
`make_scheduler(name, scheduler.config)` and never asks which one it holds.

Numerics follow diffusers (0.42) on purpose, so trained models behave the same under either library
and tests/test_scheduler.py can check parity to float32 rounding: linear betas and the cumulative
product are float32, as in diffusers; only the cosine betas come from float64 Python math before the
cast. Where diffusers has a known bug we do the correct thing instead (see `DDIMScheduler.step` and
`spaced_timesteps`).

Symbols, mapped once (DDPM: Ho et al. 2020; DDIM: Song et al. 2021; DPM-Solver++: Lu et al. 2022):
    beta_t = betas[t], alpha_bar_t = alphas_cumprod[t]  (DDIM writes alpha_bar_t as alpha_t)
    x_t = sample, x_0 = pred_original_sample, eps = the noise, v = velocity (Salimans & Ho 2022)
    DPM-Solver: alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t), lambda_t = log(alpha_t / sigma_t)
so that x_t = alpha_t * x_0 + sigma_t * eps (DDPM eq. 4).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from text2sign.json_io import read_json, write_json
from text2sign.models.serialization import config_from_dict

SCHEDULER_CONFIG_NAME = "scheduler_config.json"
BETA_SCHEDULES = ("linear", "scaled_linear", "cosine")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
TIMESTEP_SPACINGS = ("leading", "linspace", "trailing")
# Nichol & Dhariwal 2021 eq. 17: the offset s keeps beta_0 from vanishing; betas are capped below 1
# so the last step is not singular (their sec. 3.2). Same constants as diffusers' "squaredcos_cap_v2".
COSINE_OFFSET = 0.008
COSINE_MAX_BETA = 0.999
# Lin et al. 2024 leave alpha_bar_T = 0 exactly; DPM-Solver needs log(alpha_T) finite, so the solver's own
# noise table floors it at 2**-24 (the float32 epsilon scale), the same floor diffusers uses.
ZERO_SNR_ALPHA_BAR_FLOOR = 2.0**-24
# DDPM's "fixed_small" variance is clamped away from 0 so its square root is never taken of a negative rounding error.
MIN_VARIANCE = 1e-20


@dataclass
class SchedulerConfig:
    # 1000 steps of DDPM's linear 1e-4..0.02 end at alpha_bar_T ~ 4e-5: the noisiest training step keeps only
    # sqrt(4e-5) ~ 0.6% of the signal, so sampling from pure noise starts where training ended. The prior
    # attempt's 100 steps ended at alpha_bar_T = 0.36: the model never saw pure noise, yet sampling began there.
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"  # "linear" | "scaled_linear" | "cosine" (Nichol & Dhariwal; diffusers' "squaredcos_cap_v2")
    beta_start: float = 0.0001  # beta_1 of the linear and scaled_linear schedules
    beta_end: float = 0.02  # beta_T of the linear and scaled_linear schedules
    # v keeps the regression target at unit scale at every noise level; eps-prediction's x_0 estimate divides by
    # alpha_t ~ 0.006 at the first sampling steps, and v is what zero terminal SNR needs (Lin et al. 2024 sec. 3.2).
    prediction_type: str = "v_prediction"  # "epsilon" | "v_prediction" | "sample"
    # Off by default: the linear schedule already ends at SNR 4e-5. On (Lin et al. 2024 Alg. 1) makes the last
    # training step exactly pure noise, at the price of a slightly different schedule; requires v or sample prediction.
    rescale_betas_zero_snr: bool = False
    # "trailing" starts sampling at t = T-1, the noise level the model was trained on for pure noise; "leading"
    # would start at T - T/n and skip it (Lin et al. 2024 Table 2), which hurts most at few sampling steps.
    timestep_spacing: str = "trailing"  # "leading" | "linspace" | "trailing"
    steps_offset: int = 0  # added to "leading" timesteps only, as in diffusers
    # Off: clipping x_0 hides out-of-range predictions and bends the DPM-Solver ODE; a pipeline sampling pixels in
    # [-1, 1] may switch it on.
    clip_sample: bool = False
    clip_sample_range: float = 1.0  # with clip_sample: x_0 is clipped to [-range, range]
    # 0 = deterministic DDIM (Song et al. 2021 eq. 16), so a video is reproducible from its initial noise.
    eta: float = 0.0  # DDIMScheduler only

    def __post_init__(self):
        if not _is_int(self.num_train_timesteps) or self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be an int >= 2, got {self.num_train_timesteps!r}")
        if self.beta_schedule not in BETA_SCHEDULES:
            raise ValueError(
                f"beta_schedule must be one of {BETA_SCHEDULES}, got {self.beta_schedule!r} "
                "(diffusers' 'squaredcos_cap_v2' is called 'cosine' here)"
            )
        if not (_is_number(self.beta_start) and _is_number(self.beta_end) and 0.0 < self.beta_start < self.beta_end < 1.0):
            raise ValueError(f"need 0 < beta_start < beta_end < 1, got beta_start={self.beta_start!r}, beta_end={self.beta_end!r}")
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {self.prediction_type!r}")
        for name in ("rescale_betas_zero_snr", "clip_sample"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.rescale_betas_zero_snr and self.prediction_type == "epsilon":
            raise ValueError(
                "rescale_betas_zero_snr=True needs prediction_type 'v_prediction' or 'sample': at SNR 0 the x_0 estimate "
                "from eps divides by alpha_T = 0 (Lin et al. 2024 sec. 3.2)"
            )
        if self.timestep_spacing not in TIMESTEP_SPACINGS:
            raise ValueError(f"timestep_spacing must be one of {TIMESTEP_SPACINGS}, got {self.timestep_spacing!r}")
        if not _is_int(self.steps_offset) or not 0 <= self.steps_offset < self.num_train_timesteps:
            raise ValueError(f"steps_offset must be an int in [0, num_train_timesteps), got {self.steps_offset!r}")
        if not _is_number(self.clip_sample_range) or self.clip_sample_range <= 0:
            raise ValueError(f"clip_sample_range must be a number > 0, got {self.clip_sample_range!r}")
        # eta > 1 would make 1 - alpha_bar_prev - sigma_t^2 negative in DDIM eq. 12.
        if not _is_number(self.eta) or not 0.0 <= self.eta <= 1.0:
            raise ValueError(f"eta must be in [0, 1] (0 = deterministic DDIM, 1 = DDPM-like), got {self.eta!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, payload: dict) -> SchedulerConfig:
        return config_from_dict(cls, payload)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class SchedulerOutput:
    prev_sample: torch.Tensor  # x_{t-1}: the next input to the model
    pred_original_sample: torch.Tensor  # x_0 as predicted at this step (after clipping, if on)


def make_betas(config: SchedulerConfig) -> torch.Tensor:
    """beta_1..beta_T as float32, exactly as diffusers builds them."""
    num_steps = config.num_train_timesteps
    if config.beta_schedule == "linear":
        betas = torch.linspace(config.beta_start, config.beta_end, num_steps, dtype=torch.float32)  # DDPM sec. 4
    elif config.beta_schedule == "scaled_linear":
        # Latent Diffusion's schedule: linear in sqrt(beta).
        betas = torch.linspace(config.beta_start**0.5, config.beta_end**0.5, num_steps, dtype=torch.float32) ** 2
    else:

        def alpha_bar(fraction: float) -> float:
            return math.cos((fraction + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2  # Nichol & Dhariwal eq. 17

        # beta_t = 1 - alpha_bar(t) / alpha_bar(t-1), capped (Nichol & Dhariwal sec. 3.2)
        betas = torch.tensor(
            [min(1 - alpha_bar((i + 1) / num_steps) / alpha_bar(i / num_steps), COSINE_MAX_BETA) for i in range(num_steps)],
            dtype=torch.float32,
        )
    if config.rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Lin et al. 2024 Alg. 1: shift and scale sqrt(alpha_bar) so SNR(T) = 0 while alpha_bar_1 is unchanged."""
    alphas_bar_sqrt = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = alphas_bar_sqrt[0].clone(), alphas_bar_sqrt[-1].clone()
    alphas_bar_sqrt = (alphas_bar_sqrt - last) * (first / (first - last))
    alphas_bar = alphas_bar_sqrt**2
    alphas = torch.cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]])  # undo the cumulative product
    return 1 - alphas


def spaced_timesteps(config: SchedulerConfig, num_inference_steps: int, skip_final_zero: bool) -> np.ndarray:
    """Descending training timesteps to visit when sampling in `num_inference_steps` steps (Lin et al. 2024 Table 2).

    `skip_final_zero`: DPM-Solver's last update lands directly on zero noise, so for "linspace" and "leading" it
    lays out n+1 points and drops t=0, which would otherwise cost a model call for a negligible step.
    """
    num_train = config.num_train_timesteps
    num_points = num_inference_steps + 1 if skip_final_zero else num_inference_steps
    if config.timestep_spacing == "linspace":
        timesteps = np.linspace(0, num_train - 1, num_points).round()[::-1].astype(np.int64)
    elif config.timestep_spacing == "leading":
        step_ratio = num_train // num_points
        timesteps = (np.arange(0, num_points) * step_ratio).round()[::-1].astype(np.int64) + config.steps_offset
    else:
        step_ratio = num_train / num_inference_steps
        # np.arange with a float step can overshoot by one element (diffusers then yields a -1 timestep, e.g. for
        # 61 of 1000 steps); keep the first n, which match diffusers exactly.
        timesteps = np.round(np.arange(num_train, 0, -step_ratio)).astype(np.int64)[:num_inference_steps] - 1
        return timesteps.copy()
    if skip_final_zero:
        timesteps = timesteps[:-1]
    return timesteps.copy()


def to_x0_and_epsilon(prediction_type: str, model_output, sample, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_0, eps) from any parameterisation, inverting x_t = alpha * x_0 + sigma * eps (DDPM eq. 4)."""
    if prediction_type == "epsilon":
        return (sample - sigma * model_output) / alpha, model_output  # DDPM eq. 15
    if prediction_type == "sample":
        return model_output, (sample - alpha * model_output) / sigma
    # v = alpha * eps - sigma * x_0 (Salimans & Ho 2022 sec. 4); with alpha^2 + sigma^2 = 1 this inverts to:
    return alpha * sample - sigma * model_output, alpha * model_output + sigma * sample


class Scheduler:
    """The shared noise-schedule core; subclasses implement `step`."""

    init_noise_sigma = 1.0  # variance-preserving: sampling starts from x_T ~ N(0, I)
    _skip_final_zero_timestep = False

    @property
    def is_stochastic(self) -> bool:
        """Whether `step` draws noise from its generator. A deterministic sampler's batch rows are independent
        given x_T, so prompts can share a batch; a stochastic one's step noise depends on the batch it is drawn for."""
        raise NotImplementedError(f"{type(self).__name__} must say whether its step draws noise (is_stochastic)")

    def __init__(self, config: SchedulerConfig | None = None, **overrides):
        config = config if config is not None else SchedulerConfig()
        if not isinstance(config, SchedulerConfig):
            raise ValueError(f"config must be a SchedulerConfig, got {type(config).__name__}")
        known = {field.name for field in dataclasses.fields(SchedulerConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown scheduler options {unknown}; choose from {sorted(known)}")
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.betas = make_betas(self.config)  # (T,) float32
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)  # alpha_bar, (T,) float32
        self._one = torch.tensor(1.0)  # alpha_bar "before" the first step: the clean sample
        self._tables_on_device: dict[tuple, torch.Tensor] = {}  # see _table
        self.num_inference_steps: int | None = None
        self.timesteps = torch.empty(0, dtype=torch.long)  # set by set_timesteps
        self._timestep_list: list[int] = []
        self._index_of: dict[int, int] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config})"

    # ---- sampling schedule --------------------------------------------------------------------------------------

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        num_train = self.config.num_train_timesteps
        if not _is_int(num_inference_steps) or not 1 <= num_inference_steps <= num_train:
            raise ValueError(f"num_inference_steps must be an int in [1, {num_train}] (num_train_timesteps), got {num_inference_steps!r}")
        timesteps = spaced_timesteps(self.config, num_inference_steps, self._skip_final_zero_timestep)
        if len(np.unique(timesteps)) != len(timesteps) or timesteps.min() < 0 or timesteps.max() >= num_train:
            raise ValueError(
                f"{num_inference_steps} steps with timestep_spacing={self.config.timestep_spacing!r} and "
                f"steps_offset={self.config.steps_offset} give repeated or out-of-range timesteps {timesteps.tolist()[:8]}...; "
                "use fewer steps or timestep_spacing='trailing'"
            )
        self.num_inference_steps = num_inference_steps
        self._timestep_list = timesteps.tolist()
        # A host-side index: looking a timestep up never syncs with the GPU.
        self._index_of = {timestep: index for index, timestep in enumerate(self._timestep_list)}
        self.timesteps = torch.from_numpy(timesteps).to(device)

    def _step_index(self, timestep: int | torch.Tensor) -> int:
        if self.num_inference_steps is None:
            raise ValueError(f"call set_timesteps(num_inference_steps) before step() on {type(self).__name__}")
        if torch.is_tensor(timestep) and timestep.numel() != 1:
            raise ValueError(f"step() takes one timestep for the whole batch, got a tensor of shape {tuple(timestep.shape)}")
        timestep = int(timestep)
        if timestep not in self._index_of:
            raise ValueError(f"timestep {timestep} is not in this scheduler's timesteps; step over scheduler.timesteps")
        return self._index_of[timestep]

    def _previous_timestep(self, index: int) -> int:
        """The next timestep the chain visits, or -1 after the last one (meaning the clean sample)."""
        return self._timestep_list[index + 1] if index + 1 < len(self._timestep_list) else -1

    def _alpha_bar(self, timestep: int) -> torch.Tensor:
        return self.alphas_cumprod[timestep] if timestep >= 0 else self._one

    # ---- forward process and training targets -------------------------------------------------------------------

    def _table(self, name: str, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The (T,) table `name` (e.g. "alphas_cumprod") on `device`, copied there once and kept: indexing the host
        copy with device timesteps copies the table at every training step, and each copy waits for the GPU."""
        key = (name, torch.device(device), dtype)
        if key not in self._tables_on_device:
            self._tables_on_device[key] = getattr(self, name).to(device, dtype)
        return self._tables_on_device[key]

    def _coefficient(self, values: torch.Tensor, timesteps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[timesteps] shaped (b, 1, ..., 1) to broadcast over a sample of any rank, e.g. (b, c, f, h, w)."""
        if torch.is_floating_point(timesteps) or torch.is_complex(timesteps):
            raise ValueError(f"timesteps must be an integer tensor, got {timesteps.dtype}")
        if timesteps.numel() not in (1, like.shape[0]):
            raise ValueError(f"got {timesteps.numel()} timesteps for a batch of {like.shape[0]}: pass one per sample (or one)")
        picked = values.to(like.device)[timesteps.to(like.device).flatten()]
        return picked.reshape(-1, *([1] * (like.ndim - 1)))  # (b, 1, ..., 1)

    def _signal_and_noise_scales(self, timesteps: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Scales are computed in at least float32 and then cast: in bf16, 1 - alpha_bar rounds to 0 at small t.
        compute_dtype = torch.promote_types(like.dtype, torch.float32)
        alpha_bar = self._coefficient(self._table("alphas_cumprod", like.device, compute_dtype), timesteps, like)
        return (alpha_bar**0.5).to(like.dtype), ((1 - alpha_bar) ** 0.5).to(like.dtype)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (DDPM eq. 4), one timestep per batch element.

        Timesteps are not range-checked here (that would sync with the GPU every training step); an out-of-range
        index fails in torch's indexing.
        """
        alpha, sigma = self._signal_and_noise_scales(timesteps, original_samples)
        return alpha * original_samples + sigma * noise

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The v-prediction target v = alpha_t eps - sigma_t x_0 (Salimans & Ho 2022 sec. 4); `sample` is x_0."""
        alpha, sigma = self._signal_and_noise_scales(timesteps, sample)
        return alpha * noise - sigma * sample

    def snr(self, timesteps: torch.Tensor) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t) (Kingma et al. 2021 sec. 2), float32 of timesteps' shape; for min-SNR weighting."""
        alpha_bar = self._table("alphas_cumprod", timesteps.device)[timesteps]
        return alpha_bar / (1 - alpha_bar)

    # ---- shared pieces of step ----------------------------------------------------------------------------------

    def _clip(self, pred_original_sample: torch.Tensor) -> torch.Tensor:
        if not self.config.clip_sample:
            return pred_original_sample
        return pred_original_sample.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)

    @staticmethod
    def _variance_noise(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # Drawn on the generator's device, then moved, as diffusers' randn_tensor does: one CPU seed gives the same
        # noise on any accelerator.
        device = generator.device if generator is not None else like.device
        return torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)

    def step(self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor,
             generator: torch.Generator | None = None) -> SchedulerOutput:
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    # ---- save / load --------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SCHEDULER_CONFIG_NAME
        write_json(path, {"_class_name": type(self).__name__, **self.config.to_dict()})
        return path

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> Scheduler:
        """Rebuild from scheduler_config.json. On `Scheduler` this returns the class named in the file; on a
        subclass it returns that subclass, since every sampler here reads the same config."""
        payload = read_json(Path(directory) / SCHEDULER_CONFIG_NAME)
        by_class_name = {scheduler_cls.__name__: scheduler_cls for scheduler_cls in SCHEDULERS.values()}
        class_name = payload.get("_class_name")
        if class_name not in by_class_name:
            raise ValueError(f"{directory}/{SCHEDULER_CONFIG_NAME} names class {class_name!r}; expected one of {sorted(by_class_name)}")
        config = SchedulerConfig.from_dict(payload)
        return (by_class_name[class_name] if cls is Scheduler else cls)(config)


class DDPMScheduler(Scheduler):
    """Ancestral sampling from the DDPM posterior q(x_{t-1} | x_t, x_0) (Ho et al. 2020), over any timestep subset."""

    is_stochastic = True  # every step but the last adds sqrt(beta_tilde_t) z

    def step(self, model_output, timestep, sample, generator=None) -> SchedulerOutput:
        index = self._step_index(timestep)
        timestep, prev_timestep = self._timestep_list[index], self._previous_timestep(index)
        alpha_bar_t, alpha_bar_prev = self._alpha_bar(timestep), self._alpha_bar(prev_timestep)
        beta_bar_t, beta_bar_prev = 1 - alpha_bar_t, 1 - alpha_bar_prev
        # alpha_t and beta_t of the jump t -> prev_t: equal to alphas[t], betas[t] when no step is skipped.
        alpha_t = alpha_bar_t / alpha_bar_prev
        beta_t = 1 - alpha_t

        # 1. x_0 from the model output, then optional clipping
        pred_original_sample, _ = to_x0_and_epsilon(self.config.prediction_type, model_output, sample, alpha_bar_t**0.5, beta_bar_t**0.5)
        pred_original_sample = self._clip(pred_original_sample)

        # 2. posterior mean mu_tilde(x_t, x_0) (DDPM eq. 7)
        coefficient_x0 = (alpha_bar_prev**0.5 * beta_t) / beta_bar_t
        coefficient_xt = alpha_t**0.5 * beta_bar_prev / beta_bar_t
        prev_sample = coefficient_x0 * pred_original_sample + coefficient_xt * sample

        # 3. add sqrt(beta_tilde_t) z, beta_tilde_t = (1 - alpha_bar_prev) / (1 - alpha_bar_t) beta_t (DDPM eq. 7,
        #    "fixed_small"); the last step's variance is 0, so no noise is drawn there.
        if prev_timestep >= 0:
            variance = torch.clamp(beta_bar_prev / beta_bar_t * beta_t, min=MIN_VARIANCE)
            prev_sample = prev_sample + variance**0.5 * self._variance_noise(model_output, generator)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


class DDIMScheduler(Scheduler):
    """DDIM (Song et al. 2021): deterministic at eta = 0, DDPM-like at eta = 1 (config.eta)."""

    @property
    def is_stochastic(self) -> bool:
        return self.config.eta > 0  # sigma_t z is added only then (step 3 below)

    def step(self, model_output, timestep, sample, generator=None) -> SchedulerOutput:
        index = self._step_index(timestep)
        # The previous timestep is the next one in self.timesteps. diffusers instead uses t - T // n, which
        # disagrees with its own schedule for "linspace" (and "trailing" when n does not divide T): diffusers
        # issues #11347, #12633.
        timestep, prev_timestep = self._timestep_list[index], self._previous_timestep(index)
        alpha_bar_t, alpha_bar_prev = self._alpha_bar(timestep), self._alpha_bar(prev_timestep)
        beta_bar_t = 1 - alpha_bar_t

        # 1. x_0 and eps from the model output; only x_0 is clipped, eps stays the model's (as in diffusers)
        pred_original_sample, pred_epsilon = to_x0_and_epsilon(
            self.config.prediction_type, model_output, sample, alpha_bar_t**0.5, beta_bar_t**0.5
        )
        pred_original_sample = self._clip(pred_original_sample)

        # 2. sigma_t(eta) = eta sqrt((1 - a_prev) / (1 - a_t)) sqrt(1 - a_t / a_prev) (DDIM eq. 16)
        variance = ((1 - alpha_bar_prev) / beta_bar_t) * (1 - alpha_bar_t / alpha_bar_prev)
        std_dev_t = self.config.eta * variance**0.5  # DDIM's sigma_t

        # 3. x_prev = sqrt(a_prev) x_0 + sqrt(1 - a_prev - sigma_t^2) eps + sigma_t z (DDIM eq. 12)
        direction_to_xt = (1 - alpha_bar_prev - std_dev_t**2) ** 0.5 * pred_epsilon
        prev_sample = alpha_bar_prev**0.5 * pred_original_sample + direction_to_xt
        if self.config.eta > 0:
            prev_sample = prev_sample + std_dev_t * self._variance_noise(model_output, generator)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=pred_original_sample)


class DPMSolverMultistepScheduler(Scheduler):
    """DPM-Solver++(2M) (Lu et al. 2022, Alg. 2): second-order multistep on the data prediction x_0.

    Fixed as diffusers' defaults: solver order 2, midpoint form, first-order first and final steps, and the final
    step goes to zero noise (diffusers' lower_order_final=True, final_sigmas_type="zero"). Steps must be taken in
    order, since each uses the previous step's x_0; set_timesteps resets that history.
    """

    _skip_final_zero_timestep = True
    is_stochastic = False  # DPM-Solver++ solves the probability-flow ODE: nothing is drawn after x_T

    def __init__(self, config: SchedulerConfig | None = None, **overrides):
        super().__init__(config, **overrides)
        alphas_cumprod = self.alphas_cumprod.clone()
        if self.config.rescale_betas_zero_snr:
            alphas_cumprod[-1] = ZERO_SNR_ALPHA_BAR_FLOOR  # only the solver's table: add_noise keeps alpha_bar_T = 0
        # sigma_t / alpha_t per training timestep, the noise-to-signal ratio the solver steps through (diffusers' sigmas)
        self._noise_to_signal_table = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5  # (T,) float32
        self._noise_to_signal = torch.zeros(1)
        self._reset_history()

    def _reset_history(self) -> None:
        self._previous_x0: torch.Tensor | None = None
        self._previous_index: int | None = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        super().set_timesteps(num_inference_steps, device)
        # One ratio per visited timestep plus 0 for the clean endpoint; kept on the CPU, read as scalars.
        self._noise_to_signal = torch.cat([self._noise_to_signal_table[self._timestep_list], torch.zeros(1)])
        self._reset_history()

    def _alpha_sigma_lambda(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ratio = self._noise_to_signal[index]
        alpha = 1 / ((ratio**2 + 1) ** 0.5)
        sigma = ratio * alpha
        return alpha, sigma, torch.log(alpha) - torch.log(sigma)  # lambda = +inf at the clean endpoint

    def step(self, model_output, timestep, sample, generator=None) -> SchedulerOutput:
        index = self._step_index(timestep)
        if self._previous_index is not None and index != self._previous_index + 1:
            raise ValueError(
                f"DPM-Solver steps must follow scheduler.timesteps in order (got step {index} after step "
                f"{self._previous_index}); call set_timesteps() again to restart sampling"
            )
        # s = current timestep, t = the next one (the last step's t is the clean endpoint), u = the previous one.
        alpha_s, sigma_s, lambda_s = self._alpha_sigma_lambda(index)
        alpha_t, sigma_t, lambda_t = self._alpha_sigma_lambda(index + 1)
        h = lambda_t - lambda_s

        # 1. data prediction x_theta(x_s, s), clipped if on
        pred_original_sample, _ = to_x0_and_epsilon(self.config.prediction_type, model_output, sample, alpha_s, sigma_s)
        pred_original_sample = self._clip(pred_original_sample)

        # 2. solver update, in float32 as diffusers does (the exponentials are ill-conditioned in half precision)
        sample = sample.to(torch.float32)
        is_final_step = index == len(self._timestep_list) - 1
        if self._previous_x0 is None or is_final_step:
            # First-order step (DPM-Solver++ Alg. 2, first step; equals DDIM): also the last step, which lands on
            # zero noise where sigma_t = 0 and h = inf make the second-order correction meaningless.
            prev_sample = (sigma_t / sigma_s) * sample - (alpha_t * (torch.exp(-h) - 1.0)) * pred_original_sample
        else:
            _, _, lambda_u = self._alpha_sigma_lambda(index - 1)
            r = (lambda_s - lambda_u) / h  # r_i = h_{i-1} / h_i
            # D = (1 + 1/(2r)) x_theta_s - 1/(2r) x_theta_u, written as D0 + D1 / 2 (DPM-Solver++ Alg. 2)
            d0 = pred_original_sample
            d1 = (1.0 / r) * (pred_original_sample - self._previous_x0)
            prev_sample = (
                (sigma_t / sigma_s) * sample
                - (alpha_t * (torch.exp(-h) - 1.0)) * d0
                - 0.5 * (alpha_t * (torch.exp(-h) - 1.0)) * d1
            )
        self._previous_x0, self._previous_index = pred_original_sample, index
        return SchedulerOutput(prev_sample=prev_sample.to(model_output.dtype), pred_original_sample=pred_original_sample)


SCHEDULERS: dict[str, type[Scheduler]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm": DPMSolverMultistepScheduler,
}


def make_scheduler(name: str, config: SchedulerConfig) -> Scheduler:
    """The sampler called `name`, on the given noise schedule; e.g. make_scheduler("dpm", scheduler.config)."""
    if name not in SCHEDULERS:
        raise ValueError(f"unknown scheduler {name!r}; choose one of {sorted(SCHEDULERS)}")
    return SCHEDULERS[name](config)
