"""Cached text embeddings: a frozen text encoder's token states, computed once per distinct caption.

A frozen pretrained encoder (clip/t5/hf with no fine-tuned layers) maps a caption to the same states at every
step, so training encodes each distinct training caption once, at its start, and then looks the states up in
place of the encoder forward (as finetrainers' --precompute_conditions and musubi-tuner's text-encoder cache
do). The learned null embedding is not cached: caption dropout still swaps it in (TextEncoder.with_null), and it
keeps training. The lstm trains, and so do fine-tuned layers: their states change every step and are never cached.
A frozen encoder runs each caption alone and unpadded (text_encoder._run_backbone), so a caption's states do not
depend on its batch, to the bit: what is stored is exactly what a training step's forward would give.

On disk, `output_dir/text_embeddings/`:
    text_embeddings.safetensors   states (T, d) float32: every caption's real-token states, packed end to end
                                  lengths (N,) int64: tokens per caption, in the order of the index's captions
    text_embeddings.json          the key (encoder kind, pretrained path, max_length, width, and SHA-256 of the
                                  backbone's weights and of the tokenizer) and the captions
The directory is written under a temporary name and renamed when complete. A cache whose key differs from this
run's encoder is refused (ValueError naming what differs); captions it lacks are encoded and added.

A lookup rebuilds what the encoder returns: the batch padded on the right to its longest caption, padding states
zero and masked. The cache is built outside autocast, in float32: under --mixed_precision the
uncached path runs the frozen encoder in bf16/fp16, so there the cached states are the more precise of the two.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from text2sign.json_io import read_json, write_json
from text2sign.models.serialization import save_state_dict
from text2sign.models.text_encoder import HFTextEncoder, TextEncoder, TextEncoding, stack_right_padded, to_device

CACHE_DIRECTORY = "text_embeddings"
STATES_FILE = "text_embeddings.safetensors"
INDEX_FILE = "text_embeddings.json"
CACHE_FORMAT = 1  # bump when the layout or what the states mean changes: an older cache is then refused
BUILD_BATCH_SIZE = 64  # captions per encode() call while building (a frozen encoder still runs them one at a time): bounds memory


@dataclass(frozen=True)
class CacheKey:
    """What decides the states a caption gets: a cache is used only by an encoder with an equal key."""

    format: int
    kind: str
    pretrained_path: str
    max_length: int
    output_dim: int
    backbone_sha256: str
    tokenizer_sha256: str


def can_cache(encoder: TextEncoder) -> bool:
    """Whether `encoder`'s states are fixed for the whole run, per caption: a pretrained backbone with nothing of it
    trained (see the module docstring)."""
    return isinstance(encoder, HFTextEncoder) and not encoder.backbone_is_trainable


def cache_key(encoder: HFTextEncoder) -> CacheKey:
    config = encoder.config
    return CacheKey(
        format=CACHE_FORMAT, kind=config.kind, pretrained_path=str(config.pretrained_path), max_length=config.max_length,
        output_dim=encoder.output_dim,
        backbone_sha256=_weights_sha256(encoder.backbone), tokenizer_sha256=_tokenizer_sha256(encoder.tokenizer),
    )


class TextEmbeddingCache:
    """Every cached caption's real-token states; `lookup(captions)` gives what `encoder.encode(captions)` would."""

    def __init__(self, key: CacheKey, captions: list[str], states: torch.Tensor, lengths: torch.Tensor):
        if len(set(captions)) != len(captions) or lengths.shape != (len(captions),) or int(lengths.sum()) != states.shape[0]:
            raise ValueError(f"a text embedding cache needs unique captions and one length per caption summing to the states' rows; got "
                             f"{len(captions)} captions ({len(set(captions))} distinct), lengths {tuple(lengths.shape)} summing to {int(lengths.sum())}, states {tuple(states.shape)}")
        self.key = key
        self.captions = list(captions)
        self.states = states  # (T, d) float32, CPU
        self.lengths = lengths  # (N,) int64
        self.offsets = torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)]).tolist()  # caption i: rows offsets[i]:offsets[i+1]
        self.row_of = {caption: row for row, caption in enumerate(self.captions)}

    def __len__(self) -> int:
        return len(self.captions)

    @classmethod
    def build(cls, encoder: HFTextEncoder, captions: list[str], key: CacheKey | None = None) -> "TextEmbeddingCache":
        """Encode each distinct caption once (in first-seen order), BUILD_BATCH_SIZE at a time, in float32."""
        if not can_cache(encoder):
            raise ValueError(f"only a frozen pretrained text encoder can be cached (kind {encoder.config.kind!r}); "
                             "a trained one's states change as it trains (see can_cache)")
        distinct = list(dict.fromkeys(captions))
        if not distinct:
            raise ValueError("no captions to cache")
        pieces, lengths = [], []
        with torch.no_grad(), torch.autocast(encoder.device.type, enabled=False):
            for start in range(0, len(distinct), BUILD_BATCH_SIZE):
                encoding = encoder.encode(distinct[start: start + BUILD_BATCH_SIZE])  # states (b, n, d), mask (b, n)
                for states, mask in zip(encoding.states, encoding.mask):
                    pieces.append(states[mask].float().cpu())  # (n_i, d): the caption's real tokens
                    lengths.append(int(mask.sum()))
        return cls(key or cache_key(encoder), distinct, torch.cat(pieces), torch.tensor(lengths, dtype=torch.long))

    def extended(self, encoder: HFTextEncoder, captions: list[str]) -> "TextEmbeddingCache":
        """This cache plus the captions it lacks, encoded now (a resumed run whose data gained clips)."""
        missing = [caption for caption in dict.fromkeys(captions) if caption not in self.row_of]
        if not missing:
            return self
        added = TextEmbeddingCache.build(encoder, missing, key=self.key)
        return TextEmbeddingCache(self.key, self.captions + added.captions, torch.cat([self.states, added.states]), torch.cat([self.lengths, added.lengths]))

    def covers(self, captions: list[str]) -> bool:
        """Whether every caption is in the cache (a composed sentence, data/composition.py, is not)."""
        return all(caption in self.row_of for caption in captions)

    def lookup(self, captions: list[str], device: torch.device | str = "cpu") -> TextEncoding:
        """States (b, n, d) and mask (b, n) for `captions`, n the longest of them, padded on the right as the encoder pads."""
        missing = [caption for caption in captions if caption not in self.row_of]
        if missing:
            raise ValueError(f"{len(missing)} captions are not in the text embedding cache (e.g. {missing[0]!r}); it holds the training "
                             "captions it was built for: build it with every caption you train on")
        rows = [self.row_of[caption] for caption in captions]
        encoding = stack_right_padded([self.states[self.offsets[row]: self.offsets[row + 1]] for row in rows])  # (b, n, d), (b, n) on the host
        device = torch.device(device)
        return TextEncoding(states=to_device(encoding.states, device), mask=to_device(encoding.mask, device))

    def fingerprint(self) -> str:
        """SHA-256 of the captions and their states: equal on two ranks only if they hold the same cache."""
        digest = hashlib.sha256("\n".join(self.captions).encode())
        _update_with_tensor(digest, "lengths", self.lengths)
        _update_with_tensor(digest, "states", self.states)
        return digest.hexdigest()

    def check_key(self, key: CacheKey, directory: str | os.PathLike) -> None:
        """ValueError naming every field of the key that differs from `key` (this run's encoder)."""
        differences = [f"{name}: cache {getattr(self.key, name)!r}, this run {getattr(key, name)!r}"
                       for name in (field.name for field in dataclasses.fields(CacheKey)) if getattr(self.key, name) != getattr(key, name)]
        if differences:
            raise ValueError(f"the text embedding cache {directory} was built by another text encoder or settings ({'; '.join(differences)}): "
                             "delete that directory to rebuild it for this encoder, train into a new --output_dir, or pass --cache_text_embeddings false")

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the cache as `directory` whole: into a temporary sibling, then renamed."""
        directory = Path(directory)
        temporary = directory.with_name(f".tmp-{directory.name}")
        if temporary.exists():
            shutil.rmtree(temporary)
        temporary.mkdir(parents=True)
        save_state_dict({"states": self.states, "lengths": self.lengths}, temporary / STATES_FILE)
        write_json(temporary / INDEX_FILE, {"key": dataclasses.asdict(self.key), "captions": self.captions})
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(temporary, directory)
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "TextEmbeddingCache":
        directory = Path(directory)
        index = read_json(directory / INDEX_FILE)
        tensors = load_file(str(directory / STATES_FILE))
        if index["key"].get("format") != CACHE_FORMAT:
            raise ValueError(f"the text embedding cache {directory} has format {index['key'].get('format')!r}, this text2sign reads {CACHE_FORMAT}: delete it to rebuild")
        return cls(CacheKey(**index["key"]), index["captions"], tensors["states"], tensors["lengths"])


def prepare_text_cache(encoder: HFTextEncoder, captions: list[str], directory: str | os.PathLike, is_main: bool = True,
                       distributed: bool = False) -> tuple[TextEmbeddingCache, str]:
    """The cache of `captions` for `encoder` in `directory`, and what was done ("built", "loaded", "extended by N").

    Rank 0 loads and checks the saved cache (refusing another encoder's), adds missing captions or builds it, and
    saves; the other ranks wait, then load the same file and check its key against their own encoder, and every
    rank confirms it holds the same captions and states, so all ranks train on identical text.
    """
    directory = Path(directory)
    key = cache_key(encoder)
    action = "loaded"
    cache = None
    if is_main:
        if (directory / INDEX_FILE).is_file():
            cache = TextEmbeddingCache.load(directory)
            cache.check_key(key, directory)
            before = len(cache)
            cache = cache.extended(encoder, captions)
            if len(cache) > before:
                action = f"extended by {len(cache) - before} captions"
                cache.save(directory)
        else:
            cache, action = TextEmbeddingCache.build(encoder, captions, key=key), "built"
            cache.save(directory)
    if distributed:
        dist.barrier()  # rank 0 has written the cache
        if not is_main:
            if not (directory / INDEX_FILE).is_file():
                raise FileNotFoundError(f"rank {dist.get_rank()}: no text embedding cache at {directory}, which rank 0 wrote: every rank needs "
                                        "the same --output_dir (a shared filesystem), or pass --cache_text_embeddings false")
            cache = TextEmbeddingCache.load(directory)
            cache.check_key(key, directory)
        fingerprints = [None] * dist.get_world_size()
        dist.all_gather_object(fingerprints, (len(cache), cache.fingerprint()))
        if len(set(fingerprints)) > 1:
            raise RuntimeError(f"ranks hold different text embedding caches {fingerprints}: every rank must read the same {directory}")
    return cache, action


def _weights_sha256(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer: names, dtypes, shapes and bytes, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        _update_with_tensor(digest, name, tensor)
    return digest.hexdigest()


def _update_with_tensor(digest, name: str, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().cpu().contiguous()
    digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


def _tokenizer_sha256(tokenizer) -> str:
    """SHA-256 of what turns text into ids: a fast tokenizer's whole serialisation (normaliser, pre-tokeniser, model,
    post-processor), else its class and vocabulary; plus the truncation side."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    description = backend.to_str() if backend is not None else f"{type(tokenizer).__name__}|{sorted(tokenizer.get_vocab().items())}"
    return hashlib.sha256(f"{description}|truncation_side={tokenizer.truncation_side}".encode()).hexdigest()
