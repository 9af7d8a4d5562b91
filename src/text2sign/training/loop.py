"""train(config): the one training loop, read top to bottom.

Setup (DDP keyed on torchrun's RANK), the checkpoint to resume from (it fixes the architecture), data, pipeline
+ EMA + optimizer + the objective DDP wraps, then the loop: forward, backward with accumulation, clip, step, EMA,
log, validate/sample/save. The same code runs as one CPU process or under `torchrun --nproc_per_node=N train.py ...`;
only rank 0 logs and saves.

A step never waits for the GPU: noise is drawn on the device, the loss, gradient norm and finite checks stay
device tensors (a non-finite step is skipped by the fused optimizer itself), and the host reads them only on
logging steps, so the CPU can queue the next step while the GPU runs this one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from text2sign.data.dataset import SignVideoDataset, collate_batch
from text2sign.data.split import SplitRecord, assign_splits, captions_only_in_validation, write_split_record
from text2sign.model_card import TrainingSummary
from text2sign.models.ema import ExponentialMovingAverage
from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import build_pipeline
from text2sign.models.text_cache import CACHE_DIRECTORY, can_cache, prepare_text_cache
from text2sign.training.batches import RunBatchSampler, micro_batch_groups
from text2sign.training.checkpoint import (
    TrainingState, list_checkpoints, load_checkpoint, load_newest_checkpoint, prune_checkpoints, record_best,
    resolve_checkpoint, restore_rng_states, rng_states, save_checkpoint,
)
from text2sign.training.config import TrainConfig, with_architecture_of
from text2sign.training.logging import RunLogger
from text2sign.training.validation import fixed_noise_validation_loss, write_validation_samples


@dataclass
class TrainResult:
    """What a train() call did."""

    step: int  # optimizer steps done, over every call that trained this output_dir
    epoch: int  # the data position's epoch
    skipped_steps: int  # steps of this call skipped for a non-finite loss or gradient
    checkpoint: Path | None  # the newest checkpoint (rank 0; None on the other ranks)
    train_clips: int
    validation_clips: int
    validation_metric: str  # "val_loss", or "train_fixed_loss" when too few clips were held out


def warmup_then(schedule: str, warmup_steps: int, total_steps: int):
    """Linear warm-up to the base LR, then constant or cosine decay to 0 at total_steps (Loshchilov & Hutter 2017)."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def autocast_dtype_for(mixed_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of --mixed_precision on `device` (None: float32). "auto" is bf16 on a CUDA GPU that has it
    (Ampere and later: about half the time and memory of float32, and no loss scaling), else float32."""
    if mixed_precision == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    dtype = {"no": None, "fp16": torch.float16, "bf16": torch.bfloat16}[mixed_precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError("--mixed_precision fp16 needs a CUDA GPU; use bf16 or no on the CPU")
    return dtype


def train(config: TrainConfig, flags: dict[str, str] | None = None) -> TrainResult:
    """Train, or resume, the run `config` describes. `flags` are the settings train.py's command line typed
    (dotted name -> flag): on resume only those may contradict the checkpoint, as an error, and every other
    architecture setting follows it; without them (the Python API) `config` must agree with the checkpoint."""
    # ---------------------------------------------------------------- setup: processes, device, seeds
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        # NCCL on GPUs, gloo on CPU: the same script trains on a laptop and on a GPU node.
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
        rank, world_size, local_rank = dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"])
    else:
        rank, world_size, local_rank = 0, 1, 0
    is_main = rank == 0
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cuda.matmul.allow_tf32 = True  # TF32 matmuls: ~free speed on Ampere+, no visible quality cost
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True  # the clip shape never changes: pick the fastest convolution once
    torch.manual_seed(config.optim.seed)  # same on every rank: identical initial weights (DDP also broadcasts them)
    output_dir = Path(config.output_dir)
    autocast_dtype = autocast_dtype_for(config.optim.mixed_precision, device)
    # train_config.json and the model card record what ran, not "auto".
    ran_precision = {None: "no", torch.float16: "fp16", torch.bfloat16: "bf16"}[autocast_dtype]
    config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, mixed_precision=ran_precision))

    # ---------------------------------------------------------------- resume: the checkpoint fixes the architecture
    resume_from = None
    if config.resume == "latest":
        # Newest first; one a crash left unloadable is skipped with a warning. The pipeline comes from the
        # checkpoint's own configs and weights, strictly.
        found = load_newest_checkpoint(output_dir, warn=lambda message: warnings.warn(message) if is_main else None)
        if found is not None:
            resume_from, pipeline, state = found
        elif is_main:
            print(f"--resume latest: no checkpoint in {output_dir} yet, starting fresh")
    elif config.resume:
        resume_from = resolve_checkpoint(config.resume, prefer="latest")
        pipeline, state = load_checkpoint(resume_from)  # named by the user: failing to load is an error, not a fallback
    if distributed:  # ranks resuming from different checkpoints would train on different states
        chosen = [None] * world_size
        dist.all_gather_object(chosen, str(resume_from))
        if len(set(chosen)) > 1:
            raise RuntimeError(f"ranks resumed from different checkpoints {chosen}: every rank must see the same {output_dir}")
    if resume_from is not None:
        # Before the data: the clips are read at the shape the checkpoint's UNet trained on.
        config = with_architecture_of(config, pipeline, flags)

    # ---------------------------------------------------------------- data
    def dataset(split: str | None, validation: bool = False, summary: bool = False) -> SignVideoDataset:
        # config.data with the side to read; validation clips are never flipped, and only the first dataset (all
        # clips) prints and writes the pairing summary, on rank 0.
        return SignVideoDataset(dataclasses.replace(
            config.data, split=split, frame_sampling="uniform" if validation else config.data.frame_sampling,
            horizontal_flip_probability=0.0 if validation else config.data.horizontal_flip_probability,
            composition_share=0.0 if validation else config.data.composition_share,
            verbose=summary and is_main and config.data.verbose, summary_path=config.data.summary_path if summary and is_main else None,
        ))
    # Training frames: random windows drawn from (seed, epoch, index), or the whole clip; validation always
    # takes uniform frames so its loss compares like with like.
    all_clips = dataset(None, summary=True)
    has_validation = "val" in assign_splits(all_clips.names, config.data.val_fraction, config.data.group_pattern)
    if has_validation:
        # Split datasets (not index subsets of one): a clip that fails to decode is replaced by another clip of
        # its own side, so validation clips can never leak into training.
        train_set, val_set, validation_name = dataset("train"), dataset("val", validation=True), "val_loss"
    else:
        # Too few clips to hold any out (e.g. the 4 bundled ones): train on all of them, and rank checkpoints by
        # the loss on fixed training clips with fixed noise, named so in the logs.
        train_set, val_set, validation_name = all_clips, dataset(None, validation=True), "train_fixed_loss"
    if is_main:  # evaluate.py scores the clips this record holds out, never a split recomputed with other settings
        write_split_record(output_dir, SplitRecord(config.data.val_fraction, config.data.group_pattern, list(train_set.names),
                                                   list(val_set.names) if has_validation else [], config.data.data_dir))
    per_rank_batch = config.optim.batch_size
    sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=config.optim.seed, drop_last=True)
    batches_per_epoch = len(sampler) // per_rank_batch
    if batches_per_epoch == 0:
        raise ValueError(f"{len(train_set)} training clips cannot fill one batch of {per_rank_batch} on each of {world_size} process(es); lower --batch_size")
    steps_per_epoch = math.ceil(batches_per_epoch / config.optim.gradient_accumulation_steps)
    total_steps = config.optim.max_steps or steps_per_epoch * config.optim.num_epochs

    # ---------------------------------------------------------------- model, EMA, optimizer
    step, epoch, batches_done_in_epoch = 0, 0, 0
    if resume_from is None:
        pipeline = build_pipeline(train_set.captions, config.unet, config.text_encoder, config.scheduler, config.pipeline,
                                  signers=train_set.signers, timings=train_set.timings)
        config = with_architecture_of(config, pipeline)  # the text width the encoder chose, for train_config.json
    pipeline.to(device)
    # Trap: a pretrained text encoder's backbone is built in eval mode, so without this its fine-tuned layers
    # would train without dropout until the first validation switched them on, and again after every resume.
    # The encoder's train() keeps its frozen layers in eval mode: frozen features stay deterministic.
    pipeline.train()
    if pipeline.ema is None:
        pipeline.ema = ExponentialMovingAverage(pipeline, config.optim.ema_max_decay)
    ema = pipeline.ema.to(device)
    ema.max_decay = config.optim.ema_max_decay  # the ceiling is a training setting: a resumed run uses this run's value
    if config.optim.compile:
        compile_unet(pipeline.unet, distributed)
        pipeline.text_encoder.pad_to_max_length = True  # one text shape: no recompile per caption length
    trainable = [parameter for parameter in pipeline.parameters() if parameter.requires_grad]
    # Fused: one kernel for every tensor, and it reads `found_inf` to skip a non-finite step on the device.
    optimizer = torch.optim.AdamW(trainable, lr=config.optim.learning_rate, weight_decay=config.optim.weight_decay, fused=True)
    lr_factor = warmup_then(config.optim.lr_schedule, config.optim.warmup_steps, total_steps)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype is torch.float16)  # bf16 needs no loss scaling
    # Timesteps, noise and caption dropout, drawn on the training device (a host draw would be copied every step).
    noise_generator = torch.Generator(device).manual_seed(config.optim.seed + rank)
    if resume_from is not None:
        optimizer.load_state_dict(state.optimizer)
        lr_schedule.load_state_dict(state.lr_schedule)
        # Both loads bring back the saved rate and weight decay; this run's may differ (MAY_CHANGE_ON_RESUME), so the
        # schedule continues from the saved step at this run's values (unchanged ones give the saved floats exactly).
        lr_schedule.base_lrs = [config.optim.learning_rate] * len(optimizer.param_groups)
        for group in optimizer.param_groups:
            group.update(initial_lr=config.optim.learning_rate, lr=config.optim.learning_rate * lr_factor(lr_schedule.last_epoch),
                         weight_decay=config.optim.weight_decay)
        if state.scaler:  # empty when saved by a disabled scaler (not fp16): nothing to restore
            scaler.load_state_dict(state.scaler)
        step, epoch, batches_done_in_epoch = state.step, state.epoch, state.batches_done_in_epoch
        restore_rng_states(state.rng_of_rank(rank), device)  # this rank's own dropout and CUDA streams
        noise_generator.set_state(state.noise_generator_of_rank(rank))
    logger = RunLogger(config, output_dir, enabled=is_main, total_steps=total_steps, initial_step=step)
    untrained = captions_only_in_validation(train_set.captions, val_set.captions) if has_validation else []
    if untrained:
        logger.warn(f"{len(untrained)} of the {len(set(val_set.captions))} validation captions are in no training clip (e.g. {untrained[0]!r}): the "
                    f"model never learns them, and the checkpoint inference.py takes by default (the best, lowest {validation_name}) is the one "
                    "that fits them best, not the one that memorised most. With one clip per caption, train on all of them: --data.val_fraction 0 (--preset isl)")
    if is_main:
        logger.info(f"{pipeline.unet.num_parameters() / 1e6:.1f}M UNet parameters, {sum(p.numel() for p in trainable) / 1e6:.1f}M trainable in all; "
                    f"{len(train_set)} training clips, {len(val_set)} for {validation_name}, {steps_per_epoch} steps/epoch, {total_steps} steps" + (f"; resumed from {resume_from}" if resume_from else ""))
    # A frozen text encoder's states for every training caption, computed once (or loaded): looked up at each step.
    text_cache = None
    if config.cache_text_embeddings and can_cache(pipeline.text_encoder):
        text_cache, action = prepare_text_cache(pipeline.text_encoder, train_set.captions, output_dir / CACHE_DIRECTORY, is_main, distributed)
        logger.info(f"text embeddings of {len(text_cache)} distinct captions {action} in {output_dir / CACHE_DIRECTORY}")
    # The loss is its own module over the pipeline's networks (shared, not copied): DDP wraps it directly.
    objective = DenoisingObjective.for_pipeline(pipeline, text_cache)
    model = DistributedDataParallel(objective, device_ids=[local_rank] if device.type == "cuda" else None) if distributed else objective

    def sign_inputs(batch: dict) -> dict:
        """The batch's signers and frame alignment, for a pipeline with a sign conditioner (the loss's only reader)."""
        if pipeline.sign_conditioner is None:
            return {}
        return {"signers": list(batch["signer"]), "sign_positions": batch["sign_positions"], "sign_phases": batch["sign_phases"]}

    def checkpoint_now() -> None:
        """Validation loss (EMA weights, fixed timesteps and noise), then an atomic save (rank 0)."""
        validation_loss = fixed_noise_validation_loss(pipeline, val_set, device)
        logger.log({validation_name: validation_loss}, step)
        # Collectives: every rank calls them. Each rank's RNGs differ (noise generator seeded by rank, CUDA
        # kernels), so a resumed DDP run needs each rank's own states to draw what the uninterrupted one would have.
        generator_states = gather_from_every_rank(noise_generator.get_state(), world_size)
        rng_states_by_rank = gather_from_every_rank(rng_states(device), world_size)
        if not is_main:
            return
        training_state = TrainingState(optimizer.state_dict(), lr_schedule.state_dict(), scaler.state_dict(), step, epoch, batches_done_in_epoch,
                                       rng_states_by_rank, generator_states)
        summary = TrainingSummary.from_run(config, step=step, total_steps=total_steps, train_set=train_set, validation_clips=len(val_set) if has_validation else 0,
                                           validation_metric=validation_name, validation_loss=validation_loss, processes=world_size)
        path = save_checkpoint(output_dir, step, pipeline, training_state, config.to_dict(), training=summary)
        record_best(output_dir, path, validation_loss)
        prune_checkpoints(output_dir, config.keep_last)

    # ---------------------------------------------------------------- the loop
    # One loader for the whole run, its workers kept from epoch to epoch; it starts at the saved data position.
    loader = DataLoader(
        train_set, batch_sampler=RunBatchSampler(sampler, per_rank_batch, epoch, batches_done_in_epoch), collate_fn=collate_batch,
        num_workers=config.num_workers, persistent_workers=config.num_workers > 0, pin_memory=device.type == "cuda",
        # Its own generator: a DataLoader otherwise draws its worker seed from the global RNG, which a resumed run
        # would not have drawn at the same point, shifting every later dropout mask.
        generator=torch.Generator().manual_seed(config.optim.seed),
    )
    groups = micro_batch_groups(iter(loader), config.optim.gradient_accumulation_steps, batches_per_epoch, epoch, batches_done_in_epoch)
    # Step health as device tensors, read on logging steps only: the consecutive non-finite steps now, the longest
    # such run since the last log, and the skipped steps of this call.
    nonfinite_run, longest_nonfinite_run, skipped = (torch.zeros((), device=device) for _ in range(3))
    skipped_steps, last_saved = 0, step
    deadline = time.time() + 60 * config.optim.max_minutes if config.optim.max_minutes else math.inf
    while step < total_steps:
        group = next(groups)
        group_loss = torch.zeros((), device=device)
        for micro_step, batch in enumerate(group.batches):
            videos = batch["video"].to(device, non_blocking=True)  # (b, c, f, h, w) in [-1, 1]
            # DDP all-reduces the gradients once per group, in the backward of its last micro-batch.
            last_micro = micro_step == len(group) - 1
            sync = contextlib.nullcontext() if (last_micro or not distributed) else model.no_sync()
            with sync, torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                loss = model(videos, list(batch["caption"]), generator=noise_generator, **sign_inputs(batch))
                # Divided by the group's own size (an epoch's last group may be short): the gradient is a mean.
                scaler.scale(loss / len(group)).backward()
            group_loss += loss.detach() / len(group)

        # ---- optimizer step for the group
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.optim.max_grad_norm)  # the norm before clipping
        finite = (torch.isfinite(group_loss) & torch.isfinite(grad_norm)).float()  # () 1 or 0
        if distributed:
            dist.all_reduce(finite, op=dist.ReduceOp.MIN)  # every rank skips together
        if not scaler.is_enabled():
            # GradScaler's protocol for fused optimizers: found_inf=1 leaves weights and moments as they were, on
            # the device. (With fp16 the scaler sets it from the gradients itself.)
            optimizer.found_inf, optimizer.grad_scale = 1.0 - finite, None
        scaler.step(optimizer)
        scaler.update()
        # A skipped step still advances the step count, schedule and EMA: the host never learns which steps those
        # were without waiting for the GPU. The EMA moves toward the unchanged weights.
        lr_schedule.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update(pipeline)
        step += 1
        epoch, batches_done_in_epoch = group.epoch, group.batches_done_in_epoch
        if batches_done_in_epoch == batches_per_epoch:  # the epoch is done: a resume starts the next one
            epoch, batches_done_in_epoch = epoch + 1, 0
        nonfinite_run = (nonfinite_run + 1) * (1 - finite)
        longest_nonfinite_run = torch.maximum(longest_nonfinite_run, nonfinite_run)
        skipped += 1 - finite

        out_of_time = time.time() > deadline
        if step % config.log_every == 0 or step == total_steps:  # the only host reads of device values
            logged_loss = group_loss.clone()
            if distributed:
                dist.all_reduce(logged_loss)  # sum over ranks (gloo has no AVG) ...
                logged_loss /= world_size  # ... so the logged loss is the mean over ranks
                out_of_time = broadcast_flag(out_of_time, device)  # every rank stops at the same step
            newly_skipped, skipped_steps = int(skipped.item()) - skipped_steps, int(skipped.item())
            if newly_skipped:
                logger.warn(f"step {step}: {newly_skipped} step(s) since the last log had a non-finite loss or gradient and were skipped")
            if longest_nonfinite_run.item() >= config.optim.max_nonfinite_steps:
                raise RuntimeError(
                    f"{int(longest_nonfinite_run.item())} consecutive non-finite steps before step {step}: training diverged. "
                    "Lower --learning_rate, use --mixed_precision bf16 instead of fp16, or resume from an earlier checkpoint."
                )
            longest_nonfinite_run.zero_()
            logger.log({"loss": logged_loss.item(), "lr": lr_schedule.get_last_lr()[0], "grad_norm": float(grad_norm),
                        "ema_decay": ema.decay(), "epoch": group.epoch, "skipped_steps": skipped_steps}, step)
        elif distributed:
            out_of_time = False  # only logging steps ask rank 0 (a broadcast every step would wait for the GPU)
        logger.progress(step)
        if step % config.save_every == 0:
            checkpoint_now()
            last_saved = step
        if step % config.sample_every == 0 and is_main:
            paths = write_validation_samples(pipeline, config, output_dir / "samples" / f"step_{step:07d}")
            logger.log_videos(paths, step)
        if out_of_time:
            break
    groups.close()  # releases the loader's iterator, and with it its worker processes

    if last_saved != step:  # decided from loop state, not the filesystem: every rank must agree on collectives
        checkpoint_now()
    if is_main and step % config.sample_every != 0:  # a run always ends with samples of its final weights
        logger.log_videos(write_validation_samples(pipeline, config, output_dir / "samples" / f"step_{step:07d}"), step)
    logger.close()
    if distributed:
        dist.barrier()
        dist.destroy_process_group()
    final = list_checkpoints(output_dir)[-1] if is_main else None
    return TrainResult(step=step, epoch=epoch, skipped_steps=int(skipped.item()), checkpoint=final, train_clips=len(train_set),
                       validation_clips=len(val_set), validation_metric=validation_name)


def compile_unet(unet, distributed: bool) -> None:
    """torch.compile the UNet in place: parameter names, and so checkpoints, stay the same."""
    if distributed and unet.config.gradient_checkpointing:
        # Dynamo's DDP optimizer splits the graph at DDP's bucket boundaries and cannot split a checkpointed
        # region (a higher-order op): the first step raises "Found a higher order op" (pytorch#104674). Without it
        # the gradients are all-reduced after the compiled backward: less overlap, but it runs.
        torch._dynamo.config.optimize_ddp = False
    unet.compile()


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """Rank 0's value of a flag, on every rank."""
    tensor = torch.tensor(float(flag), device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def gather_from_every_rank(value, world_size: int) -> list:
    """[rank 0's value, rank 1's, ...] on every rank (any picklable value)."""
    if world_size == 1:
        return [value]
    values = [None] * world_size
    dist.all_gather_object(values, value)
    return values
