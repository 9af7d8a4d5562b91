"""The web demo: type a sentence, watch the generated sign video (app.py serves it).

`SignDemo` does the work and knows nothing of the web: it loads a checkpoint, samples one video for a prompt,
and writes it as an H.264 MP4 (what the page's video element plays and one download), a GIF (the other
download, the format the training data is in) and a PNG frame strip. `build_page` wraps it in a Gradio page,
importing gradio only there, so `import text2sign.demo` needs nothing beyond the library's own dependencies.

Input errors (an empty prompt, a checkpoint path that does not exist or does not load) are `ValueError`s and
`FileNotFoundError`s, as everywhere in this project; the page turns them into a message shown in the page.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from text2sign.data.pairing import read_caption
from text2sign.data.skips import UnreadableFileError
from text2sign.models.pipeline import TextToSignPipeline
from text2sign.models.scheduler import SCHEDULERS
from text2sign.training.checkpoint import CHECKPOINT_LOAD_ERRORS, pipeline_directory, resolve_checkpoint
from text2sign.video_io import slugify, write_gif, write_grid, write_mp4

FPS = 8.0  # the bundled clips play at 120 ms a frame; inference.py writes at 8 fps too
# Steps that give a clean sample per sampler: DPM-Solver++ converges in ~20 (generate.sh --small), DDIM in ~50.
# DDPM is ancestral and wants many more, but 100 keeps a CPU demo interactive.
SUGGESTED_STEPS = {"dpm": 20, "ddim": 50, "ddpm": 100}
ALWAYS_SHOWN_PROMPT = "Hello"
CACHE_SECONDS = 3600  # a generated video stays downloadable for an hour
ANY_SIGNER_CHOICE = "any signer"  # the signer menu's "not chosen"
# Frames of 32x32 or 64x64 px are shown blown up: keep their pixels sharp instead of smoothing them into a blur.
PAGE_CSS = ("#video video, #strip img { image-rendering: pixelated; }\n"
            "#strip img { width: 100%; height: 100%; object-fit: contain; }")  # a 32x8 px strip fills its box


@dataclass
class GeneratedVideo:
    """One generation: the frames and the files written from them."""

    prompt: str
    frames: np.ndarray  # (f, h, w, 3) uint8
    mp4: Path  # H.264: what the page plays, and a download
    gif: Path
    strip: Path  # every frame side by side (up to 8 a row), PNG
    seconds: float  # sampling and writing

    def summary(self, sampler: str, num_inference_steps: int, guidance_scale: float, seed: int) -> str:
        num_frames, height, width, _ = self.frames.shape
        return (f"{num_frames} frames of {width}x{height} px at {FPS:g} fps; {sampler}, {num_inference_steps} steps, "
                f"guidance {guidance_scale:g}, seed {seed}; {self.seconds:.1f} s")


def example_prompts(captions_dir: str | Path | None) -> list[str]:
    """"Hello" and the caption of every NAME.txt in `captions_dir` (the bundled clips: what a tiny model has seen)."""
    prompts = [ALWAYS_SHOWN_PROMPT]
    if captions_dir is not None and Path(captions_dir).is_dir():
        for path in sorted(Path(captions_dir).glob("*.txt")):
            try:
                caption = read_caption(str(path))  # the dataset's reader: byte-order mark and whitespace stripped
            except UnreadableFileError:  # empty or not UTF-8: the dataset skips it, so it is no example either
                continue
            if caption not in prompts:
                prompts.append(caption)
    return prompts


class SignDemo:
    """Loads a checkpoint (again only when asked for another) and turns a prompt into video files.

    `checkpoint` is anything inference.py's --checkpoint takes: a training output directory (its best checkpoint,
    else its latest), a checkpoint directory or a pipeline directory. Files go to `output_dir` (a new temporary
    directory by default), one sub-directory per generation.
    """

    def __init__(self, checkpoint: str | Path, device: str | torch.device = "cpu", output_dir: str | Path | None = None):
        self.device = torch.device(device)
        self.checkpoint = str(checkpoint)
        self.pipeline_dir: Path | None = None
        self.pipeline: TextToSignPipeline | None = None
        self.load(checkpoint)
        self.output_dir = Path(output_dir) if output_dir is not None else Path(tempfile.mkdtemp(prefix="text2sign-demo-"))
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.generations = 0
        # The pipeline swaps EMA weights in and out while it samples: two requests at once would mix them up.
        self._lock = threading.Lock()

    def load(self, checkpoint: str | Path) -> TextToSignPipeline:
        """The pipeline of `checkpoint`, loaded unless it is the one already loaded. One that fails to load leaves the
        loaded one in place and raises a ValueError naming the path and what went wrong."""
        text = str(checkpoint).strip()
        if not text:
            raise ValueError("enter a checkpoint path: a training output directory, a checkpoint or a pipeline directory")
        pipeline_dir = pipeline_directory(resolve_checkpoint(text)).resolve()
        if pipeline_dir == self.pipeline_dir:
            return self.pipeline
        try:
            pipeline = TextToSignPipeline.from_pretrained(pipeline_dir, device=self.device)
        except CHECKPOINT_LOAD_ERRORS as error:  # missing, truncated or half-copied files: say which and why, as --resume does
            raise ValueError(f"checkpoint {pipeline_dir} does not load ({type(error).__name__}: {error})") from error
        self.pipeline, self.pipeline_dir, self.checkpoint = pipeline, pipeline_dir, text
        return pipeline

    def describe(self) -> str:
        config = self.pipeline.config
        weights = "EMA weights" if self.pipeline.ema is not None else "raw weights (no EMA saved)"
        return (f"`{self.pipeline_dir}`: {config.num_frames} frames of {config.image_size}x{config.image_size}, "
                f"{self.pipeline.text_encoder.config.kind} text encoder, {weights}, on {self.device}"
                + (f"; signers {', '.join(self.pipeline.signers)}" if self.pipeline.signers else ""))

    def generate(
        self,
        prompt: str,
        checkpoint: str | Path | None = None,
        sampler: str | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 4.0,
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
        signer: str | None = None,
    ) -> GeneratedVideo:
        """Sample one video for `prompt` with the initial noise of `seed`; `progress(steps_done, steps)` after each step.
        `signer`: one of `pipeline.signers` (None, "" or ANY_SIGNER_CHOICE: any signer)."""
        prompt = " ".join((prompt or "").split())
        if not prompt:
            raise ValueError("enter a prompt: the text box is empty")
        if sampler is not None and sampler not in SCHEDULERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose one of {sorted(SCHEDULERS)}")
        if int(num_inference_steps) != num_inference_steps:  # the sampler says if there are too few or too many
            raise ValueError(f"steps must be a whole number, got {num_inference_steps}")
        if seed is None or int(seed) != seed or seed < 0:  # None: the page's seed box was cleared
            raise ValueError(f"seed must be a whole number >= 0, got {seed}")
        with self._lock:
            pipeline = self.load(checkpoint if checkpoint is not None else self.checkpoint)
            started = time.perf_counter()
            generator = torch.Generator().manual_seed(int(seed))
            videos = pipeline([prompt], num_inference_steps=int(num_inference_steps), guidance_scale=float(guidance_scale),
                              scheduler=sampler, generator=generator, progress=False, callback=progress,
                              signer=None if signer in (None, "", ANY_SIGNER_CHOICE) else signer)  # (1, f, h, w, 3)
            frames = videos[0].numpy()  # (f, h, w, 3)
            self.generations += 1
            directory = self.output_dir / f"{self.generations:04d}"
            directory.mkdir()
            stem = slugify(prompt)
            video = GeneratedVideo(
                prompt=prompt, frames=frames,
                mp4=write_mp4(directory / f"{stem}.mp4", frames, FPS),
                gif=write_gif(directory / f"{stem}.gif", frames, FPS),
                strip=write_grid(directory / f"{stem}_frames.png", frames),
                seconds=time.perf_counter() - started,
            )
        return video


def page_handler(demo: SignDemo):
    """The page's generate function: (prompt, checkpoint, sampler, steps, guidance, seed[, signer]) -> (video, strip, files,
    status). Bad input raises gradio's Error, which the page shows as a message instead of failing silently."""
    import gradio as gr

    def generate(prompt, checkpoint, sampler, steps, guidance, seed, signer=ANY_SIGNER_CHOICE, progress=gr.Progress()):
        def report(steps_done: int, total: int) -> None:
            progress((steps_done, total), desc="denoising", unit="steps")

        try:
            video = demo.generate(prompt, checkpoint, sampler, steps, guidance, seed, progress=report, signer=signer)
        except (ValueError, FileNotFoundError) as error:
            # input errors, not bugs: a message in the page and no traceback in the server log
            raise gr.Error(" ".join(str(error).split()), title="Cannot generate", print_exception=False) from error
        status = video.summary(sampler or demo.pipeline.config.sampler, int(steps), float(guidance), int(seed))
        return str(video.mp4), str(video.strip), [str(video.gif), str(video.mp4)], f"{status}  \nModel: {demo.describe()}"

    return generate


def build_page(demo: SignDemo, examples: list[str]):
    """The Gradio page (a gr.Blocks) around `demo`; launch it with `.launch(server_name=..., server_port=..., css=PAGE_CSS)`."""
    import gradio as gr

    default_sampler = demo.pipeline.config.sampler
    # Gradio keeps a copy of every file it serves; a demo left running for days would fill the disk without this.
    with gr.Blocks(title="text2sign", analytics_enabled=False, delete_cache=(CACHE_SECONDS, CACHE_SECONDS)) as page:
        gr.Markdown("# text2sign\nType a sentence and generate a sign-language video from it.")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", placeholder="Hello", lines=2, max_lines=4, elem_id="prompt")
                gr.Examples(examples=[[example] for example in examples], inputs=[prompt], label="Example prompts")
                with gr.Row():
                    sampler = gr.Dropdown(sorted(SCHEDULERS), value=default_sampler, label="Sampler", elem_id="sampler")
                    steps = gr.Slider(1, demo.pipeline.scheduler.config.num_train_timesteps, value=SUGGESTED_STEPS.get(default_sampler, 50), step=1, label="Steps", elem_id="steps")
                with gr.Row():
                    guidance = gr.Slider(1, 12, value=4, step=0.5, label="Guidance (1 = none)", elem_id="guidance")
                    seed = gr.Number(value=0, precision=0, minimum=0, label="Seed", elem_id="seed")
                # Shown for a model trained with signers (--pipeline.signer_conditioning true): who signs.
                signer = gr.Dropdown([ANY_SIGNER_CHOICE, *demo.pipeline.signers], value=ANY_SIGNER_CHOICE, label="Signer",
                                     visible=bool(demo.pipeline.signers), elem_id="signer")
                checkpoint = gr.Textbox(value=demo.checkpoint, label="Checkpoint (training output, checkpoint or pipeline directory)", elem_id="checkpoint")
                button = gr.Button("Generate", variant="primary", elem_id="generate")
            with gr.Column():
                video = gr.Video(label="Generated video", autoplay=True, loop=True, elem_id="video")
                strip = gr.Image(label="Frames", type="filepath", height=200, elem_id="strip")
                files = gr.File(label="Download (GIF, MP4)", file_count="multiple", elem_id="downloads")
                status = gr.Markdown(f"Model: {demo.describe()}", elem_id="status")
        inputs = [prompt, checkpoint, sampler, steps, guidance, seed, signer]
        outputs = [video, strip, files, status]
        generate = page_handler(demo)
        button.click(generate, inputs=inputs, outputs=outputs, show_progress_on=[video])
        prompt.submit(generate, inputs=inputs, outputs=outputs, show_progress_on=[video])
    # One generation at a time (SignDemo also locks); a bounded queue turns a flood of requests away.
    page.queue(default_concurrency_limit=1, max_size=16)
    return page
