"""Model cards: the README.md of every saved pipeline directory, in the Hugging Face model-card form.

A card is YAML front matter (what the Hub indexes: library, tags, licence, base model, datasets) followed by a
body a person reads: what the model is, its architecture, how it was trained and, once `evaluate.py` has scored
it, the headline numbers with the command that reproduces them. `TextToSignPipeline.save_pretrained` writes it
(with a `TrainingSummary` when train() saves a checkpoint); `evaluate.py` rewrites only the text between the two
evaluation markers, so a second evaluation replaces the first. `from_pretrained` never reads it.

Licence. The weights are derived from the training clips, so the card's `license` is the training data's, and
only where the data is known: a data folder whose README.md names a dataset of KNOWN_DATASETS (the bundled
training_data/ names How2Sign), or whose every clip has How2Sign's file naming (`..._<n>-<n>-rgb_front`). How2Sign
is CC BY-NC 4.0, so such a card says `license: cc-by-nc-4.0` and `datasets: [How2Sign]`. Otherwise the card has
no `license` (never a guess) and its body asks whoever shares it to add the data's. The `base_model` key is the
text encoder's pretrained path when that is a Hub name (a local directory is no Hub id); the `text_encoder` key
always names the encoder's kind and path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml  # PyYAML, a dependency of transformers: quotes any caption or path safely

from text2sign.json_io import write_text_atomically

MODEL_CARD_NAME = "README.md"
# evaluate.py replaces what lies between these (HTML comments: invisible on the Hub and on GitHub).
EVALUATION_START = "<!-- text2sign:evaluation:start -->"
EVALUATION_END = "<!-- text2sign:evaluation:end -->"
TAGS = ("text-to-video", "sign-language", "diffusion", "video-diffusion", "text2sign")
DATA_README_NAMES = ("README.md", "README.txt", "README")
# Hub ids are "name" or "org/name"; anything else (absolute, ./, deeper) is a local directory.
HUB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass(frozen=True)
class KnownDataset:
    name: str
    license: str  # the Hub's licence identifier
    license_name: str  # as people write it
    citation: str
    clip_name_pattern: re.Pattern  # every clip named like this: the data is this dataset


KNOWN_DATASETS = (
    KnownDataset(
        name="How2Sign", license="cc-by-nc-4.0", license_name="CC BY-NC 4.0",
        citation="Duarte et al., \"How2Sign: A Large-scale Multimodal Dataset for Continuous American Sign Language\", CVPR 2021",
        clip_name_pattern=re.compile(r"_\d+-\d+-rgb_front$"),  # --7E2sU6zP4_10-5-rgb_front (data/split.py)
    ),
)


def identify_dataset(data_dir: str | os.PathLike, clip_names: list[str] | None = None) -> KnownDataset | None:
    """The known dataset the training data is, or None: named in the data folder's README, or matching every clip's name."""
    directory = Path(data_dir)
    for readme_name in DATA_README_NAMES:
        readme = directory / readme_name
        if readme.is_file():
            text = readme.read_text(encoding="utf-8", errors="replace").casefold()
            named = [dataset for dataset in KNOWN_DATASETS if dataset.name.casefold() in text]
            if len(named) == 1:  # a README naming two datasets does not say which one this is
                return named[0]
    if clip_names:
        for dataset in KNOWN_DATASETS:
            if all(dataset.clip_name_pattern.search(name) for name in clip_names):  # names: relative paths, no extension
                return dataset
    return None


@dataclass(frozen=True)
class TrainingSummary:
    """What train() knows about a checkpoint beyond the pipeline's own configs: the run, the data, the step."""

    preset: str
    step: int
    total_steps: int
    train_clips: int
    distinct_captions: int
    validation_clips: int
    validation_metric: str  # "val_loss" (held-out clips) or "train_fixed_loss" (nothing held out)
    validation_loss: float | None
    batch_size: int  # per process and micro-batch
    gradient_accumulation_steps: int
    processes: int
    learning_rate: float
    lr_schedule: str
    warmup_steps: int
    mixed_precision: str
    seed: int
    data_dir: str
    dataset: KnownDataset | None

    @classmethod
    def from_run(cls, config, *, step: int, total_steps: int, train_set, validation_clips: int, validation_metric: str,
                 validation_loss: float | None, processes: int) -> "TrainingSummary":
        """From a TrainConfig (not imported: training/config.py imports the pipeline, which imports this) and the training dataset."""
        return cls(
            preset=config.preset, step=step, total_steps=total_steps, train_clips=len(train_set), distinct_captions=len(set(train_set.captions)),
            validation_clips=validation_clips, validation_metric=validation_metric, validation_loss=validation_loss,
            batch_size=config.optim.batch_size, gradient_accumulation_steps=config.optim.gradient_accumulation_steps, processes=processes,
            learning_rate=config.optim.learning_rate, lr_schedule=config.optim.lr_schedule, warmup_steps=config.optim.warmup_steps,
            mixed_precision=config.optim.mixed_precision, seed=config.optim.seed, data_dir=config.data.data_dir,
            dataset=identify_dataset(config.data.data_dir, list(train_set.names)),
        )

    @property
    def global_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps * self.processes


# ----------------------------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------------------------


def write_model_card(directory: str | os.PathLike, pipeline, training: TrainingSummary | None = None) -> Path:
    """Write `directory/README.md` for `pipeline` (a TextToSignPipeline), its evaluation section still empty."""
    return write_text_atomically(Path(directory) / MODEL_CARD_NAME, render_model_card(pipeline, training))


def render_model_card(pipeline, training: TrainingSummary | None = None) -> str:
    encoder = pipeline.text_encoder.config
    metadata: dict = {"library_name": "text2sign", "pipeline_tag": "text-to-video", "tags": list(TAGS)}
    dataset = training.dataset if training else None
    if dataset is not None:
        metadata["license"] = dataset.license
        metadata["datasets"] = [dataset.name]
    if encoder.pretrained_path and _is_hub_id(encoder.pretrained_path):
        metadata["base_model"] = encoder.pretrained_path
    metadata["text_encoder"] = {"kind": encoder.kind, "pretrained_path": encoder.pretrained_path, "training": _encoder_training(pipeline.text_encoder)}
    front_matter = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, default_flow_style=False)
    sections = [
        f"---\n{front_matter}---",
        "# text2sign: text to sign-language video",
        _description(pipeline),
        "## Model\n\n" + _table(_model_rows(pipeline)),
        "## Training\n\n" + (_table(_training_rows(training)) if training else "Not recorded: this pipeline was saved outside `train.py`, so its data and training are unknown."),
        "## Training data and licence\n\n" + _data_paragraph(training),
        "## Usage\n\n" + _usage(),
        f"## Evaluation\n\n{EVALUATION_START}\n{_not_evaluated()}\n{EVALUATION_END}",
    ]
    return "\n\n".join(sections) + "\n"


def write_evaluation(directory: str | os.PathLike, pipeline, section: str) -> Path:
    """Put `section` (markdown, from evaluation_section) between the card's evaluation markers, replacing what was
    there. A directory with no card (saved before cards existed) gets one first; a card whose markers were removed
    by hand gets the section appended once, with markers, so the next evaluation replaces it."""
    path = Path(directory) / MODEL_CARD_NAME
    text = path.read_text(encoding="utf-8") if path.is_file() else render_model_card(pipeline)
    block = f"{EVALUATION_START}\n{section.strip()}\n{EVALUATION_END}"
    start, end = text.find(EVALUATION_START), text.find(EVALUATION_END)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(EVALUATION_END):]
    else:
        text = text.rstrip("\n") + f"\n\n## Evaluation\n\n{block}\n"
    return write_text_atomically(path, text)


def evaluation_section(result, command: str, report_directory: str | os.PathLike) -> str:
    """The card's Evaluation text from evaluate.py's ConditioningEvaluation: what was scored, the headline numbers
    (each beside what a text-blind model scores), the command that reproduces them and where the full report is."""
    split, gap, identification = result.split, result.loss_gap, result.caption_identification
    scored = f"split `{split.scored}` ({split.description})" if split else "the clips given"
    lines = [
        f"Scored by `evaluate.py` on {scored}: {result.num_clips} clips, one per caption; {result.num_inference_steps} "
        f"`{result.scheduler}` steps, seeds {', '.join(map(str, result.seeds))}, {'EMA' if result.used_ema else 'raw'} weights.",
    ]
    if split is not None and split.note:
        lines.append(f"\nNote: {split.note.rstrip('.')}.")
    rows = [
        ("loss gap, deranged - right caption", f"{gap.gap:.4g} ± {gap.gap_standard_error:.2g}", "0"),
        (f"caption identification ({identification.num_candidates}-way)", f"{identification.accuracy:.3f}", f"{identification.chance:.3f}"),
    ]
    for label, scores in result.guidance.items():
        retrieval, sensitivity = scores.retrieval["pixel"], scores.prompt_sensitivity["pixel"]
        rows += [
            (f"guidance {label}: retrieval top-1", f"{retrieval.top[1]:.3f}", f"{retrieval.chance_top[1]:.3f}"),
            (f"guidance {label}: prompt sensitivity, same seed", f"{sensitivity.ratio_same_seed:.3g}", "0"),
            (f"guidance {label}: PSNR to own clip (to another clip)", f"{scores.psnr:.2f} dB ({scores.psnr_other_clip:.2f} dB)", ""),
        ]
        if scores.fvd is not None:
            rows.append((f"guidance {label}: FVD ({scores.fvd.num_fake_clips} clips)", f"{scores.fvd.fvd:.1f}", ""))
    lines += ["", "| measure | value | chance |", "|---|---|---|", *(f"| {name} | {value} | {chance} |" for name, value, chance in rows)]
    lines += ["", "Reproduce:", "", "```bash", command, "```", "",
              f"Full report: `{Path(report_directory) / 'evaluation.md'}` and `evaluation.json` beside it."]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# the body's parts
# ----------------------------------------------------------------------------------------------------------


def _description(pipeline) -> str:
    config = pipeline.config
    return (
        f"A text-conditioned video diffusion model: it turns an English sentence into a {config.num_frames}-frame "
        f"{config.image_size}x{config.image_size} RGB clip of it being signed. A 3D UNet denoises the video, attending to the "
        "text encoder's token states; classifier-free guidance uses a learned \"no text\" embedding, trained by caption dropout. "
        "Load it with the text2sign library (`library_name: text2sign`), as below."
    )


def _model_rows(pipeline) -> list[tuple[str, str]]:
    unet, encoder, scheduler, config = pipeline.unet.config, pipeline.text_encoder, pipeline.scheduler.config, pipeline.config
    encoder_name = f"`{encoder.config.kind}`" + (f" `{encoder.config.pretrained_path}`" if encoder.config.pretrained_path else "")
    return [
        ("UNet", f"{pipeline.unet.num_parameters() / 1e6:.2f}M parameters; model_channels {unet.model_channels}, channel_mult "
                 f"{tuple(unet.channel_mult)}, num_res_blocks {unet.num_res_blocks}, attention at levels {tuple(unet.attention_levels)}"),
        ("video", f"{config.num_frames} frames x {config.image_size}x{config.image_size} pixels, RGB"),
        ("text encoder", f"{encoder_name}, {_encoder_training(encoder)}, max_length {encoder.config.max_length} tokens, width {encoder.output_dim}"),
        ("diffusion", f"{scheduler.num_train_timesteps} steps, {scheduler.beta_schedule} betas, predicts {scheduler.prediction_type}"
                      + (", zero terminal SNR" if scheduler.rescale_betas_zero_snr else "")),
        ("guidance", f"classifier-free; caption dropout {config.caption_dropout_prob}; default sampler `{config.sampler}`"),
        ("loss", config.loss_weighting + (f" (gamma {config.min_snr_gamma})" if config.loss_weighting == "min_snr" else "")),
        ("EMA weights", "saved (ema.safetensors), used by default when sampling" if pipeline.ema is not None else "none"),
        *_sign_conditioning_rows(pipeline.sign_conditioner),
    ]


def _sign_conditioning_rows(conditioner) -> list[tuple[str, str]]:
    """The optional signer and sign-track conditions (models/sign_conditioning.py): who can be asked for, and how timing was learned."""
    if conditioner is None:
        return []
    rows = []
    if conditioner.has_signers:
        rows.append(("signers", ", ".join(f"`{name}`" for name in conditioner.config.signers)
                     + " (`--signer NAME` in inference.py, `signer=` in the pipeline; none given: any signer)"))
    if conditioner.has_sign_track:
        timing = ("timing labels (signs.csv); sampling lays signs out by their mean training durations" if conditioner.config.timed_training
                  else "no timing labels: the signs share each clip equally, at training and sampling")
        rows.append(("sign track", f"per-frame sign embedding over {len(conditioner.vocabulary) - 2} signs; {timing}"))
    return rows


def _training_rows(training: TrainingSummary) -> list[tuple[str, str]]:
    validation = (f"{training.validation_clips} held-out clips ({training.validation_metric})" if training.validation_metric == "val_loss"
                  else f"none held out; checkpoints ranked by {training.validation_metric} on fixed training clips")
    loss = f"{training.validation_loss:.5g}" if training.validation_loss is not None else "not measured"
    schedule = f"{training.lr_schedule} after {training.warmup_steps} warm-up steps"
    return [
        ("preset", f"`{training.preset}`"),
        ("steps", f"{training.step} of {training.total_steps}"),
        ("training clips", f"{training.train_clips} ({training.distinct_captions} distinct captions)"),
        ("validation", validation),
        (f"{training.validation_metric} at this step", loss),
        ("batch", f"{training.batch_size} per process x {training.gradient_accumulation_steps} accumulation x {training.processes} "
                  f"process(es) = {training.global_batch_size}"),
        ("learning rate", f"{training.learning_rate:g}, {schedule}"),
        ("precision", training.mixed_precision if training.mixed_precision != "no" else "float32"),
        ("seed", str(training.seed)),
        ("data", f"`{training.data_dir}`"),
    ]


def _data_paragraph(training: TrainingSummary | None) -> str:
    if training is None:
        return "Unknown. Add the training data's name and licence (`license:` above) before sharing this model."
    dataset = training.dataset
    if dataset is None:
        return (f"Trained on `{training.data_dir}`, which text2sign does not recognise as a dataset it knows, so this card states "
                "no licence. The weights derive from those clips: add their licence (`license:` above) before sharing this model.")
    return (f"Trained on {dataset.name} clips ({dataset.citation}), licensed {dataset.license_name}: the weights derive from "
            f"them, so this card carries the data's licence (`license: {dataset.license}`). Credit {dataset.name} wherever "
            "the model or its videos are shown.")


def _usage() -> str:
    return (
        "```python\n"
        "from text2sign.models.pipeline import TextToSignPipeline\n"
        "\n"
        "pipeline = TextToSignPipeline.from_pretrained(\"path/to/this/directory\")\n"
        "videos = pipeline([\"How are you?\"], num_inference_steps=50, guidance_scale=4.0)  # uint8 (b, f, h, w, 3)\n"
        "```\n\n"
        "or `python inference.py --checkpoint path/to/this/directory --prompts \"How are you?\"`."
    )


def _not_evaluated() -> str:
    return ("Not evaluated yet. `python evaluate.py --checkpoint <this checkpoint> --data_dir <the training data>` scores it "
            "and writes its headline numbers here.")


def _encoder_training(encoder) -> str:
    config = encoder.config
    if config.kind == "lstm":
        return "trained from scratch"
    if not config.freeze:
        return "fully fine-tuned"
    return f"last {config.train_last_n_layers} layers fine-tuned" if config.train_last_n_layers else "frozen"


def _is_hub_id(path: str) -> bool:
    return bool(HUB_ID_PATTERN.match(path)) and not Path(path).expanduser().exists()


def _table(rows: list[tuple[str, str]]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)])
