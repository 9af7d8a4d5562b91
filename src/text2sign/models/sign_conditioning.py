"""Who signs and which sign each frame shows: an embedding added to the UNet's timestep embedding.

The text encoder gives the sentence; it says nothing of *when* each sign happens or who signs. Two optional
conditions, each its own learned table, summed into the embedding that scales and shifts every residual block:

  signer      (b,) one row per known signer, row 0 = "any signer" (trained by dropping the signer with
              `signer_dropout_prob`, so sampling without --signer works);
  sign track  (b, f) per frame: the embedding of the sign that frame shows (the caption's whitespace units,
              a gloss vocabulary of the training captions), or of REST, plus its phase within the sign
              (sinusoidal features of 0..1, projected): frame i learns it is signing JOHN, a third through.
              Training reads the alignment from timing labels (data/sign_timing.py) or, without them, the
              uniform monotonic prior; sampling predicts it from the training durations (SignDurations).

A dropped caption (classifier-free guidance's null branch) drops the sign track with it: the track spells the
sentence, so keeping it would leak the text into the unconditional branch. Every table starts at zero, so a
fresh conditioner adds nothing and the UNet starts as it would without it.

Saved as `sign_conditioning/` (config.json with the signers, vocabulary and durations, model.safetensors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from text2sign.data.sign_timing import REST, SignDurations, SignSpan, frame_alignment, uniform_spans
from text2sign.json_io import read_json
from text2sign.models.serialization import CONFIG_NAME, WEIGHTS_NAME, config_from_dict, load_state_dict_strict, save_module
from text2sign.models.text_encoder import PAD_ID, UNK_ID, Vocabulary

SIGN_CONDITIONING_DIRECTORY = "sign_conditioning"
PHASE_FEATURES = 8  # sinusoids of the phase within a sign: 4 frequencies, cos and sin
ANY_SIGNER = 0  # the signer id of "not given"


@dataclass
class SignConditioningConfig:
    embedding_dim: int = 512  # the UNet's timestep embedding width (4 x model_channels)
    signers: tuple[str, ...] = ()  # known signers, ids 1.. in this order; empty: no signer conditioning
    sign_tokens: tuple[str, ...] = ()  # the sign track's vocabulary (<pad>, <unk>, then signs); empty: no sign track
    durations: dict = field(default_factory=dict)  # SignDurations.to_dict(): how sampling lays out a new sentence
    timed_training: bool = False  # the training clips had timing labels (else the uniform prior trained the track)

    def __post_init__(self):
        self.signers, self.sign_tokens = tuple(self.signers), tuple(self.sign_tokens)
        if len(set(self.signers)) != len(self.signers) or any(not name for name in self.signers):
            raise ValueError(f"signer names must be unique and non-empty, got {self.signers}")
        if not self.signers and not self.sign_tokens:
            raise ValueError("a SignConditioner needs signers, a sign vocabulary or both")


class SignConditioner(nn.Module):
    """(captions, signers, frame alignment) -> the embedding (b, E) or (b, f, E) that joins the timestep embedding."""

    def __init__(self, config: SignConditioningConfig):
        super().__init__()
        self.config = config
        dim = config.embedding_dim
        self.signer_embedding = nn.Embedding(len(config.signers) + 1, dim) if config.signers else None  # row 0: any signer
        self.vocabulary = Vocabulary(list(config.sign_tokens), tokenizer="glosses") if config.sign_tokens else None
        if self.vocabulary is not None:
            self.sign_embedding = nn.Embedding(len(self.vocabulary) + 1, dim)  # + REST, the last row; PAD_ID = no track
            self.phase_projection = nn.Linear(PHASE_FEATURES, dim)
            self.rest_id = len(self.vocabulary)
        self.durations = SignDurations.from_dict(config.durations) if config.durations else SignDurations()
        for parameter in self.parameters():
            nn.init.zeros_(parameter)

    @property
    def has_signers(self) -> bool:
        return self.signer_embedding is not None

    @property
    def has_sign_track(self) -> bool:
        return self.vocabulary is not None

    # ---- inputs ------------------------------------------------------------------------------------------
    def signer_ids(self, signers: list[str | None]) -> torch.Tensor:
        """(b,) long: each name's id, ANY_SIGNER for None or "". An unknown name is an error listing the known ones."""
        known = {name: index + 1 for index, name in enumerate(self.config.signers)}
        unknown = sorted({name for name in signers if name and name not in known})
        if unknown:
            raise ValueError(f"unknown signer {', '.join(map(repr, unknown))}: this model knows {', '.join(self.config.signers) or 'no signers'}")
        return torch.tensor([known[name] if name else ANY_SIGNER for name in signers], dtype=torch.long)

    def alignment(self, captions: list[str], num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """What sampling conditions on, with no labels: each caption's signs laid out by the training durations
        (the uniform prior when training had no timing). -> positions (b, f) long (REST = -1), phases (b, f)."""
        rows = [frame_alignment(self.durations.predict(caption) if self.config.timed_training else uniform_spans(caption), num_frames)
                for caption in captions]
        return torch.from_numpy(np.stack([row[0] for row in rows])), torch.from_numpy(np.stack([row[1] for row in rows]))

    def sign_ids(self, captions: list[str], positions: torch.Tensor) -> torch.Tensor:
        """positions (b, f) (a sign's index in its caption, or REST) -> vocabulary ids (b, f), REST as rest_id."""
        ids = torch.full(positions.shape, self.rest_id, dtype=torch.long)  # (b, f)
        for row, caption in enumerate(captions):
            caption_ids = torch.tensor(self.vocabulary.ids(caption) or [UNK_ID], dtype=torch.long)  # (n,) one per sign: the gloss tokenizer splits at whitespace
            frames = positions[row].cpu()  # (f,)
            signing = frames != REST
            if signing.any() and int(frames[signing].max()) >= len(caption_ids):
                raise ValueError(f"a frame shows sign {int(frames[signing].max())} of {caption!r}, which has {len(caption_ids)}")
            ids[row, signing] = caption_ids[frames[signing]]
        return ids

    # ---- the embedding ----------------------------------------------------------------------------------
    def forward(self, captions: list[str], signers: list[str | None] | None = None, positions: torch.Tensor | None = None,
                phases: torch.Tensor | None = None, drop_text: torch.Tensor | None = None, drop_signer: torch.Tensor | None = None,
                num_frames: int | None = None) -> torch.Tensor:
        """(b, E), or (b, f, E) with a sign track. positions/phases (b, f): the frames' alignment (training's labels or
        prior); None: predicted for num_frames frames. drop_text (b,) True: no track for that row (the null branch);
        drop_signer (b,) True: any signer. Unused parts stay in the graph (times zero), as DDP needs."""
        device = next(self.parameters()).device
        batch = len(captions)
        embedding = torch.zeros(batch, self.config.embedding_dim, device=device)  # (b, E)
        if self.has_signers:
            ids = self.signer_ids(list(signers) if signers is not None else [None] * batch).to(device)  # (b,)
            if drop_signer is not None:
                ids = torch.where(drop_signer.to(device), torch.zeros_like(ids), ids)
            embedding = embedding + self.signer_embedding(ids)  # (b, E)
        if not self.has_sign_track:
            return embedding  # (b, E)
        if positions is None:
            if num_frames is None:
                raise ValueError("give the frames' alignment (positions, phases) or num_frames to predict it")
            positions, phases = self.alignment(captions, num_frames)  # (b, f) each
        ids = self.sign_ids(captions, positions).to(device)  # (b, f)
        phases = phases.to(device, torch.float32)  # (b, f)
        if drop_text is not None:
            dropped = drop_text.to(device)[:, None]  # (b, 1)
            ids = torch.where(dropped, torch.full_like(ids, PAD_ID), ids)  # (b, f) PAD: no track
            phases = torch.where(dropped, torch.zeros_like(phases), phases)
        frequencies = math.pi * torch.arange(1, PHASE_FEATURES // 2 + 1, device=device, dtype=torch.float32)  # (4,)
        angles = phases[..., None] * frequencies  # (b, f, 4)
        phase_features = torch.cat([angles.cos(), angles.sin()], dim=-1) * (ids != PAD_ID)[..., None]  # (b, f, 8), zero without a track
        track = self.sign_embedding(ids) + self.phase_projection(phase_features)  # (b, f, E)
        return embedding[:, None] + track  # (b, f, E)

    # ---- save / load ------------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        save_module(self, self.config, directory)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "SignConditioner":
        directory = Path(directory)
        conditioner = cls(config_from_dict(SignConditioningConfig, read_json(directory / CONFIG_NAME)))
        load_state_dict_strict(conditioner, directory / WEIGHTS_NAME)
        return conditioner


def build_sign_conditioner(embedding_dim: int, captions: list[str], signers: list[str | None] | None, timings: list[tuple[SignSpan, ...] | None] | None,
                           use_signers: bool, use_sign_track: bool) -> SignConditioner | None:
    """A fresh conditioner from the training data: its signers (sorted), its signs' vocabulary and durations. None
    when neither is asked for. Asking for signers with no clip naming one is an error (the data has no signers.csv)."""
    if not (use_signers or use_sign_track):
        return None
    names: tuple[str, ...] = ()
    if use_signers:
        names = tuple(sorted({name for name in (signers or []) if name}))
        if not names:
            raise ValueError("signer conditioning needs signer names: put a signers.csv (name,signer) beside the clips")
    tokens: tuple[str, ...] = ()
    durations, timed = {}, False
    if use_sign_track:
        tokens = tuple(Vocabulary.build(captions, tokenizer="glosses").tokens)
        timed_spans = [spans for spans in (timings or []) if spans]
        timed = bool(timed_spans)
        durations = SignDurations.fit(timed_spans).to_dict() if timed else {}
    return SignConditioner(SignConditioningConfig(embedding_dim, names, tokens, durations, timed))
