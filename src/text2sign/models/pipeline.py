"""Text -> token embeddings -> guided denoising -> uint8 video; `build_pipeline` assembles one from its configs.

Classifier-free guidance (Ho & Salimans 2022) only works if the model has learned what "no text" means:
during training a fraction `caption_dropout_prob` of captions is replaced by the text encoder's learned
null embedding (models/objective.py, the training loss), and sampling uses that same null embedding for the
unconditional branch. The prior attempt never dropped captions, so its guidance pushed away from an untrained branch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors.torch import load_file
from torch import nn
from tqdm.auto import tqdm

from text2sign.json_io import read_json, write_json
from text2sign.model_card import TrainingSummary, write_model_card
from text2sign.models.ema import ExponentialMovingAverage, evaluation_weights
from text2sign.models.scheduler import SCHEDULERS, Scheduler, SchedulerConfig, make_scheduler
from text2sign.models.serialization import config_from_dict, save_state_dict
from text2sign.models.sign_conditioning import SIGN_CONDITIONING_DIRECTORY, SignConditioner, build_sign_conditioner
from text2sign.models.text_encoder import TextEncoder, TextEncoderConfig, TextEncoding, build_text_encoder
from text2sign.models.unet3d import UNet3D, UNet3DConfig

PIPELINE_CONFIG_NAME = "pipeline_config.json"
EMA_WEIGHTS_NAME = "ema.safetensors"


@dataclass
class PipelineConfig:
    num_frames: int = 16  # default video shape for sampling (the shape the model was trained on)
    image_size: int = 64
    caption_dropout_prob: float = 0.1  # share of training captions replaced by the null embedding
    loss_weighting: str = "min_snr"  # "mse" | "min_snr"
    min_snr_gamma: float = 5.0  # Hang et al. 2023: clamp each timestep's SNR weight at gamma
    sampler: str = "ddim"  # default sampler for __call__: a key of SCHEDULERS
    # Optional conditions (models/sign_conditioning.py), both off by default:
    signer_conditioning: bool = False  # a learned embedding per signer (signers.csv beside the clips); --signer NAME at sampling
    signer_dropout_prob: float = 0.1  # share of training clips whose signer is hidden, so sampling without a signer works
    sign_track: bool = False  # each frame learns which sign it shows: timing labels (signs.csv) or the uniform prior; predicted at sampling

    def __post_init__(self):
        if not 0.0 <= self.signer_dropout_prob < 1.0:
            raise ValueError(f"signer_dropout_prob must be in [0, 1), got {self.signer_dropout_prob}")
        if not 0.0 <= self.caption_dropout_prob < 1.0:
            raise ValueError(f"caption_dropout_prob must be in [0, 1), got {self.caption_dropout_prob}")
        if self.loss_weighting not in ("mse", "min_snr"):
            raise ValueError(f"loss_weighting must be 'mse' or 'min_snr', got {self.loss_weighting!r}")
        if self.min_snr_gamma <= 0:
            raise ValueError(f"min_snr_gamma must be positive, got {self.min_snr_gamma}")
        if self.sampler not in SCHEDULERS:
            raise ValueError(f"sampler must be one of {sorted(SCHEDULERS)}, got {self.sampler!r}")
        if self.num_frames < 1 or self.image_size < 1:
            raise ValueError("num_frames and image_size must be positive")


def videos_to_uint8(videos: torch.Tensor) -> torch.Tensor:
    """(b, c, f, h, w) in [-1, 1] -> (b, f, h, w, c) uint8."""
    pixels = ((videos.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (b, c, f, h, w)
    return pixels.permute(0, 2, 3, 4, 1).contiguous().cpu()  # (b, f, h, w, c)


class TextToSignPipeline(nn.Module):
    """UNet3D + scheduler + text encoder. An nn.Module so `.to(device)` and `.parameters()` cover both networks."""

    def __init__(self, unet: UNet3D, scheduler: Scheduler, text_encoder: TextEncoder, config: PipelineConfig | None = None,
                 sign_conditioner: SignConditioner | None = None):
        super().__init__()
        if unet.config.text_dim != text_encoder.output_dim:
            raise ValueError(f"UNet text_dim={unet.config.text_dim} but the text encoder outputs {text_encoder.output_dim}; build it with build_pipeline(), which sets text_dim from the encoder")
        if sign_conditioner is not None and sign_conditioner.config.embedding_dim != unet.config.embedding_dim:
            raise ValueError(f"the sign conditioner's embedding_dim {sign_conditioner.config.embedding_dim} is not the UNet's {unet.config.embedding_dim}")
        self.unet = unet
        self.text_encoder = text_encoder
        self.scheduler = scheduler
        self.config = config or PipelineConfig()
        # Registered last, so a pipeline without one has the parameter order (and optimizer state layout) it always had.
        self.sign_conditioner = sign_conditioner
        self.ema: ExponentialMovingAverage | None = None

    @property
    def signers(self) -> tuple[str, ...]:
        """The signers `signer=` accepts (empty without signer conditioning)."""
        return self.sign_conditioner.config.signers if self.sign_conditioner is not None and self.sign_conditioner.has_signers else ()

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    # ---- text ------------------------------------------------------------------------------------------
    def encode_text(self, captions: list[str], drop: torch.Tensor | None = None) -> TextEncoding:
        """Encode captions; rows where `drop` is True get the learned null embedding (TextEncoder.encode)."""
        return self.text_encoder.encode(list(captions), drop)  # states (b, n, d), mask (b, n)

    # ---- sampling --------------------------------------------------------------------------------------
    @torch.no_grad()
    def __call__(
        self,
        prompts: list[str] | str,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float = 4.0,
        scheduler: str | None = None,
        generator: torch.Generator | None = None,
        use_ema: bool = True,
        progress: bool = True,
        output_type: str = "uint8",
        latents: torch.Tensor | None = None,
        callback: Callable[[int, int], None] | None = None,
        signer: str | list[str | None] | None = None,
        init_videos: torch.Tensor | None = None,
        strength: float = 1.0,
    ) -> torch.Tensor:
        """Generate one video per prompt: uint8 (b, f, h, w, 3), or float (b, c, f, h, w) in [-1, 1] with output_type="tensor".

        guidance_scale w: noise_pred = uncond + w * (cond - uncond) (Ho & Salimans 2022, eq. 6 rewritten); w = 1 is
        plain conditional sampling and skips the unconditional pass. `latents` (b, c, f, h, w) replaces the
        initial noise x_T drawn from `generator` (e.g. one noise shared by several prompts). `callback(steps_done,
        num_inference_steps)` runs after each denoising step (the web demo's progress bar). `signer`: one of
        `pipeline.signers` for every prompt, or one per prompt (None: any signer); an unknown name is an error
        listing the known ones. A model with a sign track lays each prompt's signs out by its training durations.

        `init_videos` (b, c, f, h, w) in [-1, 1] with `strength` s in (0, 1): start from those videos noised to the
        sampler's step round(s * steps) from the end, x_t = sqrt(alpha_bar_t) x_init + sqrt(1 - alpha_bar_t) eps
        (DDPM eq. 4; `latents` or `generator` give eps), and denoise only the last steps (SDEdit, Meng et al. 2022):
        the video keeps the init's coarse motion and the text redraws the rest. s = 1 ignores them (pure noise).
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not prompts:
            raise ValueError("give at least one prompt")
        if output_type not in ("uint8", "tensor"):
            raise ValueError(f"output_type must be 'uint8' or 'tensor', got {output_type!r}")
        if guidance_scale < 1.0:
            raise ValueError(f"guidance_scale must be >= 1 (1 = no guidance), got {guidance_scale}")
        num_frames = num_frames or self.config.num_frames
        height = height or self.config.image_size
        width = width or self.config.image_size
        if not 0.0 < strength <= 1.0:
            raise ValueError(f"strength must be in (0, 1] (1 = from pure noise), got {strength}")
        signers = self._signers_for(prompts, signer)
        sampler = make_scheduler(scheduler or self.config.sampler, self.scheduler.config)
        sampler.set_timesteps(num_inference_steps)
        first_step = 0 if init_videos is None or strength == 1.0 else num_inference_steps - max(1, round(strength * num_inference_steps))
        with evaluation_weights(self, use_ema):  # eval mode and EMA weights, both restored even on an error
            batch = len(prompts)
            text = self.encode_text(prompts)  # (b, n, d), (b, n)
            guided = guidance_scale != 1.0
            if guided:  # the same rows twice, the second copy as the null embedding: one encoder pass, not two
                doubled = TextEncoding(states=text.states.repeat(2, 1, 1), mask=text.mask.repeat(2, 1))  # (2b, n, d), (2b, n)
                text = self.text_encoder.with_null(doubled, torch.arange(2 * batch) >= batch)  # cond rows, then null rows
            extra = None
            if self.sign_conditioner is not None:  # the null rows keep the signer and lose the sign track with the text
                rows = 2 * batch if guided else batch
                extra = self.sign_conditioner(prompts * (rows // batch), (signers * (rows // batch)) if signers else None,
                                              drop_text=torch.arange(rows) >= batch, num_frames=num_frames)  # (2b or b, [f,] 4c)
            shape = (batch, self.unet.config.in_channels, num_frames, height, width)
            if latents is not None and tuple(latents.shape) != shape:
                raise ValueError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
            if init_videos is not None and tuple(init_videos.shape) != shape:
                raise ValueError(f"init_videos must have shape {shape}, got {tuple(init_videos.shape)}")
            initial = latents if latents is not None else torch.randn(shape, generator=generator, dtype=torch.float32)
            initial = initial.to(self.device, torch.float32)  # (b, c, f, h, w) eps
            timesteps_left = sampler.timesteps[first_step:]  # all of them from pure noise
            if first_step == 0:
                sample = initial * sampler.init_noise_sigma  # (b, c, f, h, w) x_T
            else:
                start = torch.full((batch,), int(timesteps_left[0]), device=self.device, dtype=torch.long)  # (b,)
                sample = sampler.add_noise(init_videos.to(self.device, torch.float32), initial, start)  # (b, c, f, h, w) x_t
            for step_index, timestep in enumerate(tqdm(timesteps_left, desc="denoising", disable=not progress, leave=False)):
                model_input = torch.cat([sample, sample]) if guided else sample  # (2b or b, c, f, h, w)
                timesteps = torch.full((model_input.shape[0],), int(timestep), device=self.device, dtype=torch.long)  # (2b or b,)
                model_output = self.unet(model_input, timesteps, text.states, text.mask, **({} if extra is None else {"extra_embedding": extra}))  # (2b or b, c, f, h, w)
                if guided:
                    output_conditional, output_null = model_output.chunk(2)  # (b, c, f, h, w) each
                    model_output = output_null + guidance_scale * (output_conditional - output_null)  # (b, c, f, h, w)
                sample = sampler.step(model_output, timestep, sample, generator=generator).prev_sample  # (b, c, f, h, w) x_{t-1}
                if callback is not None:
                    callback(step_index + 1, len(timesteps_left))
        return videos_to_uint8(sample) if output_type == "uint8" else sample

    def _signers_for(self, prompts: list[str], signer: str | list[str | None] | None) -> list[str | None] | None:
        if signer is None:
            return None
        signers = [signer] * len(prompts) if isinstance(signer, str) else list(signer)
        if len(signers) != len(prompts):
            raise ValueError(f"give one signer, or one per prompt: {len(signers)} signers for {len(prompts)} prompts")
        if any(signers) and not self.signers:
            raise ValueError("this model was trained without signer conditioning: sample without a signer (train with --pipeline.signer_conditioning true)")
        if self.sign_conditioner is not None:
            self.sign_conditioner.signer_ids(signers)  # an unknown name fails here, before any denoising
        return signers

    # ---- save / load -----------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, training: TrainingSummary | None = None) -> None:
        """unet/ (config.json + model.safetensors), text_encoder/, scheduler/, pipeline_config.json, ema.safetensors,
        and README.md, the model card (text2sign.model_card): `training` (train() passes the run's) fills its
        training, data and licence sections. from_pretrained never reads the card."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.unet.save_pretrained(directory / "unet")
        self.text_encoder.save_pretrained(directory / "text_encoder")
        self.scheduler.save_pretrained(directory / "scheduler")
        write_json(directory / PIPELINE_CONFIG_NAME, dataclasses.asdict(self.config))
        if self.sign_conditioner is not None:
            self.sign_conditioner.save_pretrained(directory / SIGN_CONDITIONING_DIRECTORY)
        if self.ema is not None:
            save_state_dict(self.ema.state_dict(), directory / EMA_WEIGHTS_NAME)
        write_model_card(directory, self, training)

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str | torch.device = "cpu") -> "TextToSignPipeline":
        """Rebuild every part from its saved config and load weights strictly; the EMA (if saved) is attached
        as `pipeline.ema` and used by __call__ unless use_ema=False."""
        directory = Path(directory)
        if not (directory / PIPELINE_CONFIG_NAME).is_file():
            raise FileNotFoundError(f"{directory} is not a pipeline directory (no {PIPELINE_CONFIG_NAME}); point at a directory written by save_pretrained()")
        unet = UNet3D.from_pretrained(directory / "unet")
        text_encoder = TextEncoder.from_pretrained(directory / "text_encoder")
        scheduler = Scheduler.from_pretrained(directory / "scheduler")
        config = config_from_dict(PipelineConfig, read_json(directory / PIPELINE_CONFIG_NAME))
        conditioner_directory = directory / SIGN_CONDITIONING_DIRECTORY
        sign_conditioner = SignConditioner.from_pretrained(conditioner_directory) if conditioner_directory.is_dir() else None
        pipeline = cls(unet, scheduler, text_encoder, config, sign_conditioner).to(device)
        if (directory / EMA_WEIGHTS_NAME).is_file():
            pipeline.ema = ExponentialMovingAverage(pipeline)
            pipeline.ema.load_state_dict(load_file(str(directory / EMA_WEIGHTS_NAME)))
            pipeline.ema.to(device)
        return pipeline


def build_pipeline(
    captions: list[str] | None = None,
    unet: UNet3DConfig | None = None,
    text_encoder: TextEncoderConfig | None = None,
    scheduler: SchedulerConfig | None = None,
    pipeline: PipelineConfig | None = None,
    signers: list[str | None] | None = None,
    timings: list | None = None,
) -> TextToSignPipeline:
    """A fresh, untrained pipeline from its component configs: the one place one is assembled.

    The text encoder is built first (the lstm builds its vocabulary from `captions`, the training captions), so
    the UNet's cross-attention width comes from it: `unet.text_dim=None` (the default) means "the encoder's".
    Training uses the DDPM class; sampling picks its sampler per call (`pipeline.config.sampler` by default).
    `signers` and `timings` (per training clip, in `captions` order; data/sign_timing.py) build the sign conditioner
    when `pipeline.signer_conditioning` or `pipeline.sign_track` asks for one.
    """
    encoder = build_text_encoder(text_encoder or TextEncoderConfig(), captions=captions)
    unet = unet or UNet3DConfig()
    if unet.text_dim is None:
        unet = dataclasses.replace(unet, text_dim=encoder.output_dim)
    pipeline = pipeline or PipelineConfig()
    conditioner = build_sign_conditioner(unet.embedding_dim, list(captions or []), signers, timings, pipeline.signer_conditioning, pipeline.sign_track)
    return TextToSignPipeline(UNet3D(unet), make_scheduler("ddpm", scheduler or SchedulerConfig()), encoder, pipeline, conditioner)
