"""Text encoders: captions -> token states (b, n, d) + mask (b, n), behind one interface.

Kinds:
  "lstm"  word vocabulary built from the training captions + bidirectional LSTM, trained from scratch;
  "clip"  transformers CLIPTextModel;  "t5"  T5EncoderModel;  "hf"  any encoder-only AutoModel (BERT, MiniLM...).
The pretrained kinds are frozen by default (optionally fine-tuning their last layers). Every kind owns a
learned `null_embedding`, the "no text" token that classifier-free guidance trains with caption dropout and
samples with; it is always trainable, even when the backbone is frozen.

Saved as `text_encoder_config.json` + `text_encoder.safetensors` (+ `vocab.json` for lstm, + `backbone/` for
a fine-tuned transformer) so it can share a directory with the UNet's `config.json` + `model.safetensors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from text2sign.json_io import read_json, write_json
from text2sign.models.serialization import config_from_dict, load_state_dict_strict, save_state_dict

TEXT_ENCODER_KINDS = ("lstm", "clip", "t5", "hf")
PRETRAINED_KINDS = ("clip", "t5", "hf")
CONFIG_FILE = "text_encoder_config.json"
WEIGHTS_FILE = "text_encoder.safetensors"
VOCAB_FILE = "vocab.json"
BACKBONE_DIRECTORY = "backbone"  # fine-tuned transformer + tokenizer, written by their own save_pretrained
PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
TOKENIZERS = ("words", "glosses")
PAD_ID, UNK_ID = 0, 1
# Only used to measure how large a pretrained backbone's token states are, so the null token starts at that
# scale; any short caption of the kind we train on does.
SCALE_PROBE_CAPTION = "How are you?"


@dataclass
class TextEncoderConfig:
    kind: str = "lstm"  # "lstm" | "clip" | "t5" | "hf"
    pretrained_path: str | None = None  # hub name or local directory; required for clip/t5/hf
    max_length: int = 32  # tokens; captions are sentences, longer ones are truncated at the end
    freeze: bool = True  # pretrained transformers frozen by default (ignored by lstm, which is always trained)
    train_last_n_layers: int = 0  # with freeze=True: fine-tune the last N transformer layers (+ final norm)
    # lstm only:
    embed_dim: int = 256  # word embedding width
    hidden_dim: int = 256  # per direction; output dim is 2 * hidden_dim (bidirectional)
    num_layers: int = 2  # stacked LSTM layers
    min_word_count: int = 1  # words seen fewer times in the training captions map to <unk>
    # "words": words and punctuation (captions in English); "glosses": one token per whitespace-separated unit, so a
    # gloss sentence's tokens are its signs ("IX-1P GO1 NEW-YORK" is 3 tokens, not 7)
    tokenizer: str = "words"

    def __post_init__(self):
        if self.kind not in TEXT_ENCODER_KINDS:
            raise ValueError(f"unknown text encoder kind {self.kind!r}: choose one of {TEXT_ENCODER_KINDS}")
        if self.max_length < 1:
            raise ValueError(f"max_length must be at least 1 token, got {self.max_length}")
        if self.train_last_n_layers < 0:
            raise ValueError(f"train_last_n_layers must be >= 0, got {self.train_last_n_layers}")
        if self.tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}: choose one of {TOKENIZERS}")
        if self.kind == "lstm":
            if self.pretrained_path is not None:
                raise ValueError("kind='lstm' is trained from scratch and takes no pretrained_path: drop it, or pick kind 'clip', 't5' or 'hf'")
            if self.train_last_n_layers:
                raise ValueError("train_last_n_layers applies to the pretrained kinds only; the lstm is always fully trained: set it to 0")
            for name in ("embed_dim", "hidden_dim", "num_layers", "min_word_count"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")
        else:
            if self.tokenizer != "words":
                raise ValueError(f"tokenizer={self.tokenizer!r} is the lstm's word vocabulary; kind={self.kind!r} uses its own pretrained tokenizer: drop the setting")
            if not self.pretrained_path:
                raise ValueError(f"kind={self.kind!r} needs pretrained_path: a hub name (e.g. 'openai/clip-vit-base-patch32') or a local model directory")
            if not self.freeze and self.train_last_n_layers:
                raise ValueError("freeze=False already trains every layer; set train_last_n_layers=0, or freeze=True to fine-tune only the last N layers")


@dataclass
class TextEncoding:
    states: torch.Tensor  # (b, n, d) float
    mask: torch.Tensor  # (b, n) bool, True = real token

    def __post_init__(self):
        if self.states.ndim != 3 or self.mask.shape != self.states.shape[:2] or self.mask.dtype != torch.bool:
            raise ValueError(f"TextEncoding needs states (b, n, d) and a bool mask (b, n); got {tuple(self.states.shape)} and {tuple(self.mask.shape)} {self.mask.dtype}")


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device` without blocking the host: a copy from pageable memory waits for the GPU's queue,
    one from pinned memory is queued behind it."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def stack_right_padded(pieces: list[torch.Tensor]) -> TextEncoding:
    """Per-caption states (n_i, d) as one batch: states (b, n_max, d), zero past each caption's end, and its mask (b, n_max)."""
    lengths = [piece.shape[0] for piece in pieces]
    states = pieces[0].new_zeros(len(pieces), max(lengths), pieces[0].shape[-1])  # (b, n_max, d)
    mask = torch.zeros(len(pieces), max(lengths), dtype=torch.bool, device=pieces[0].device)  # (b, n_max)
    for row, (piece, length) in enumerate(zip(pieces, lengths)):
        states[row, :length] = piece
        mask[row, :length] = True
    return TextEncoding(states=states, mask=mask)


def _parameter_holder(parameters: dict[str, nn.Parameter]) -> nn.Module:
    """A module owning exactly these (shared, not copied) parameters, so the strict save/load helpers work on a subset."""
    holder = nn.Module()
    for name, parameter in parameters.items():
        holder.register_parameter(name, parameter)
    return holder


class TextEncoder(nn.Module):
    """Interface: encode(texts) -> TextEncoding, null(b), save_pretrained(dir), from_pretrained(dir)."""

    def __init__(self, config: TextEncoderConfig, output_dim: int):
        super().__init__()
        self.config = config
        self.output_dim = output_dim
        # Subclasses set its scale; it is never zeros: a zero null token gives cross-attention all-zero values,
        # which the UNet reads as "no signal" rather than as a text it can learn to tell apart from captions.
        self.null_embedding = nn.Parameter(torch.zeros(1, 1, output_dim))
        # Pad every encoding to config.max_length tokens instead of the batch's longest caption: a compiled UNet
        # then sees one text shape, not a recompile per new length. Padding is masked, so nothing else changes.
        # A run setting, not a saved one (train() sets it with --compile).
        self.pad_to_max_length = False

    @property
    def device(self) -> torch.device:
        return self.null_embedding.device

    def encode(self, texts: list[str], drop: torch.Tensor | None = None) -> TextEncoding:
        """Token states (b, n, d) and mask (b, n); rows where `drop` (b,) is True get the null embedding instead.

        The null embedding is one token, written at position 0 of a row whose other positions are masked,
        so conditional and null rows share one (b, n, d) batch. With a `drop` tensor the null embedding is
        always in the graph (zero gradient when nothing is dropped), which DDP needs: every trainable
        parameter must take part in every backward.
        """
        if isinstance(texts, str) or not texts or not all(isinstance(text, str) for text in texts):
            raise ValueError("encode() takes a non-empty list of caption strings, e.g. encode(['How are you?'])")
        encoding = self.padded(self._encode(list(texts)))  # states (b, n, d), mask (b, n)
        return encoding if drop is None else self.with_null(encoding, drop)

    def padded(self, encoding: TextEncoding) -> TextEncoding:
        """`encoding` padded on the right to config.max_length tokens (masked) when pad_to_max_length is set."""
        missing = self.config.max_length - encoding.states.shape[1]
        if not self.pad_to_max_length or missing <= 0:
            return encoding
        states = nn.functional.pad(encoding.states, (0, 0, 0, missing))  # (b, max_length, d)
        mask = nn.functional.pad(encoding.mask, (0, missing), value=False)  # (b, max_length)
        return TextEncoding(states=states, mask=mask)

    def with_null(self, encoding: TextEncoding, drop: torch.Tensor) -> TextEncoding:
        """`encoding` with the rows where `drop` (b,) is True replaced by the null embedding (see encode); training
        with cached text states (models/text_cache.py) comes here directly, so the null embedding still trains."""
        encoding = self.padded(encoding)  # cached states come here unpadded
        states, mask = encoding.states, encoding.mask
        null = self.null(states.shape[0])  # states (b, 1, d)
        null_states = nn.functional.pad(null.states, (0, 0, 0, states.shape[1] - 1))  # (b, n, d)
        null_mask = torch.zeros_like(mask)  # (b, n)
        null_mask[:, 0] = True
        drop = drop.to(states.device)
        states = torch.where(drop[:, None, None], null_states.to(states.dtype), states)  # (b, n, d)
        mask = torch.where(drop[:, None], null_mask, mask)  # (b, n)
        return TextEncoding(states=states, mask=mask)

    def forward(self, texts: list[str]) -> TextEncoding:
        return self.encode(texts)

    def null(self, batch_size: int) -> TextEncoding:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        states = self.null_embedding.expand(batch_size, 1, self.output_dim)  # (b, 1, d)
        mask = torch.ones(batch_size, 1, dtype=torch.bool, device=self.device)  # (b, 1)
        return TextEncoding(states=states, mask=mask)

    def save_pretrained(self, directory: str | os.PathLike) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {"_class_name": type(self).__name__, **dataclasses.asdict(self.config), **self._extra_config()}
        write_json(directory / CONFIG_FILE, payload)
        save_state_dict(self._saved_state_module().state_dict(), directory / WEIGHTS_FILE)
        self._save_extras(directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike) -> "TextEncoder":
        """Rebuild the subclass named in the saved config, then load its weights strictly."""
        directory = Path(directory)
        payload = read_json(directory / CONFIG_FILE)
        class_name = payload.get("_class_name")
        encoder_class = _ENCODER_CLASSES.get(class_name)
        if encoder_class is None:
            raise ValueError(f"{directory / CONFIG_FILE} names class {class_name!r}; expected one of {sorted(_ENCODER_CLASSES)}")
        if not issubclass(encoder_class, cls):
            raise ValueError(f"{directory} holds a {class_name}, not a {cls.__name__}: load it with TextEncoder.from_pretrained")
        encoder = encoder_class._build_from_directory(directory, payload)
        load_state_dict_strict(encoder._saved_state_module(), directory / WEIGHTS_FILE)
        return encoder

    # --- what subclasses provide ---
    def _encode(self, texts: list[str]) -> TextEncoding:
        raise NotImplementedError

    def _saved_state_module(self) -> nn.Module:
        """The module whose state_dict is `text_encoder.safetensors`."""
        return self

    def _extra_config(self) -> dict:
        return {}

    def _save_extras(self, directory: Path) -> None:
        pass

    @classmethod
    def _build_from_directory(cls, directory: Path, payload: dict) -> "TextEncoder":
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------
# LSTM: word vocabulary + bidirectional LSTM
# ----------------------------------------------------------------------------------------------------------

# A word keeps inner apostrophes ("don't", "what's"); every other non-space, non-word character is its own
# token. Punctuation is split off rather than stripped: "?" and "!" mark questions and exclamations, which
# signers show with non-manual markers (raised or furrowed brows), so they are worth a token; splitting also
# makes "hungry?" and "hungry" the same word.
_TOKEN_PATTERN = re.compile(r"\w+(?:'\w+)*|[^\w\s]")
# NFKC leaves typographic apostrophes alone; map them so "don’t" and "don't" are one word.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


class Vocabulary:
    """Caption tokens <-> ids. `<pad>` = 0, `<unk>` = 1, then tokens by descending count, ties alphabetical.

    `tokenizer` "words" splits words and punctuation; "glosses" keeps each whitespace-separated unit whole, so the
    tokens of a gloss sentence are its signs (both NFKC-normalise and casefold).
    """

    def __init__(self, tokens: list[str], tokenizer: str = "words"):
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN] or len(set(tokens)) != len(tokens):
            raise ValueError(f"a vocabulary is {PAD_TOKEN!r}, {UNK_TOKEN!r}, then unique words; got {tokens[:5]}...")
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}: choose one of {TOKENIZERS}")
        self.tokens = list(tokens)
        self.tokenizer = tokenizer
        self.token_to_id = {token: index for index, token in enumerate(self.tokens)}

    @staticmethod
    def tokenize(text: str, tokenizer: str = "words") -> list[str]:
        """NFKC-normalise, casefold (lowercase that also folds e.g. 'ß'), then split words and punctuation ("words")
        or at whitespace only ("glosses")."""
        text = unicodedata.normalize("NFKC", text).casefold().translate(_APOSTROPHES)
        return text.split() if tokenizer == "glosses" else _TOKEN_PATTERN.findall(text)

    @classmethod
    def build(cls, captions: list[str], min_word_count: int = 1, tokenizer: str = "words") -> "Vocabulary":
        counts = Counter(token for caption in captions for token in cls.tokenize(caption, tokenizer))
        words = sorted((word for word, count in counts.items() if count >= min_word_count), key=lambda word: (-counts[word], word))
        if not words:
            raise ValueError(f"no word appears at least min_word_count={min_word_count} times in the {len(captions)} captions: lower min_word_count")
        return cls([PAD_TOKEN, UNK_TOKEN] + words, tokenizer)

    def __len__(self) -> int:
        return len(self.tokens)

    def ids(self, text: str) -> list[int]:
        """The text's token ids, unknown tokens as <unk>."""
        return [self.token_to_id.get(token, UNK_ID) for token in self.tokenize(text, self.tokenizer)]

    def encode(self, texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """-> token ids (b, n) long, mask (b, n) bool. Truncates at max_length; a text with no tokens
        (empty or whitespace) becomes a single <unk>, so every row has at least one real token to attend to."""
        rows = [self.ids(text)[:max_length] or [UNK_ID] for text in texts]
        longest = max(len(row) for row in rows)
        token_ids = torch.full((len(rows), longest), PAD_ID, dtype=torch.long)  # (b, n)
        for index, row in enumerate(rows):
            token_ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask = token_ids != PAD_ID  # (b, n); PAD_ID is never a word, so this is exactly the real tokens
        return token_ids, mask

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, {"tokens": self.tokens, "tokenizer": self.tokenizer})

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Vocabulary":
        payload = read_json(path)
        return cls(payload["tokens"], payload.get("tokenizer", "words"))  # vocabularies saved before glosses split words


class LSTMTextEncoder(TextEncoder):
    def __init__(self, config: TextEncoderConfig, vocabulary: Vocabulary):
        if config.kind != "lstm":
            raise ValueError(f"LSTMTextEncoder needs kind='lstm', got {config.kind!r}: use build_text_encoder(config)")
        super().__init__(config, output_dim=2 * config.hidden_dim)
        self.vocabulary = vocabulary
        self.embedding = nn.Embedding(len(vocabulary), config.embed_dim, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, num_layers=config.num_layers, batch_first=True, bidirectional=True)
        # LayerNorm puts the states at the unit per-element scale the pretrained kinds' final norms give, and
        # keeps it there while the LSTM trains, so the UNet's cross-attention sees one scale from every kind.
        self.norm = nn.LayerNorm(self.output_dim)
        # At init the LayerNorm output has per-element std 1, so the null token starts with the norm of a real
        # token: the UNet can tell it apart from text by direction, not by being a near-zero outlier.
        nn.init.normal_(self.null_embedding, std=1.0)

    def _encode(self, texts: list[str]) -> TextEncoding:
        token_ids, mask = self.vocabulary.encode(texts, self.config.max_length)  # (b, n), (b, n) on the host
        # pack_padded_sequence wants the lengths on the host: counted before the copy, not read back from the GPU (a sync).
        lengths = mask.sum(dim=1)  # (b,)
        token_ids, mask = to_device(token_ids, self.device), to_device(mask, self.device)
        # Outside autocast: autocast runs RNNs in fp16 whatever dtype it was given (cuDNN), and under bf16 no grad scaler
        # keeps the LSTM's fp16 gradients from underflowing, silently. The encoder is small: float32 costs little.
        with torch.autocast(self.device.type, enabled=False):
            embedded = self.embedding(token_ids)  # (b, n, embed_dim)
            # Packing runs the backward direction from each text's last real token, so padding never leaks in.
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            packed_states, _ = self.lstm(packed)
            states, _ = pad_packed_sequence(packed_states, batch_first=True, total_length=token_ids.shape[1])  # (b, n, 2 * hidden_dim)
            states = self.norm(states) * mask.unsqueeze(-1)  # (b, n, d); padding zeroed after the norm's bias
        return TextEncoding(states=states, mask=mask)

    def _save_extras(self, directory: Path) -> None:
        self.vocabulary.save(directory / VOCAB_FILE)

    @classmethod
    def _build_from_directory(cls, directory: Path, payload: dict) -> "LSTMTextEncoder":
        config = config_from_dict(TextEncoderConfig, payload)
        return cls(config, Vocabulary.load(directory / VOCAB_FILE))


# ----------------------------------------------------------------------------------------------------------
# Pretrained transformers: CLIP, T5, any encoder-only AutoModel
# ----------------------------------------------------------------------------------------------------------

# (layer list, final norm) module paths, tried in order: CLIP in transformers 4 wraps a `text_model`, 5 does
# not; T5's stack is `encoder.block`; BERT-likes are post-norm, so they have no final norm.
_LAYER_STACK_PATHS = (
    ("text_model.encoder.layers", "text_model.final_layer_norm"),
    ("encoder.layers", "final_layer_norm"),
    ("encoder.block", "encoder.final_layer_norm"),
    ("encoder.layer", None),
)


def _has_submodule(module: nn.Module, path: str) -> bool:
    return path in dict(module.named_modules())


def _find_layer_stack(backbone: nn.Module) -> tuple[nn.ModuleList, nn.Module | None]:
    for layers_path, norm_path in _LAYER_STACK_PATHS:
        if _has_submodule(backbone, layers_path):
            final_norm = backbone.get_submodule(norm_path) if norm_path and _has_submodule(backbone, norm_path) else None
            return backbone.get_submodule(layers_path), final_norm
    raise ValueError(f"cannot find the transformer layer list of {type(backbone).__name__} (looked for {[path for path, _ in _LAYER_STACK_PATHS]}): use train_last_n_layers=0 or freeze=False")


def _resolve_source(source: str) -> str:
    """A local directory, or a hub name left for transformers. A path that looks local but is gone is an error
    here, not a confusing hub lookup: hub names are 'name' or 'org/name', never absolute or deeper."""
    local = Path(source).expanduser()
    if local.exists():
        return str(local)
    if local.is_absolute() or source.startswith((".", "~")) or source.count("/") > 1:
        raise FileNotFoundError(f"pretrained_path {source!r} does not exist; if the model moved, set pretrained_path to its new directory (or a hub name)")
    return source


def _run_backbone(backbone: nn.Module, tokenizer, texts: list[str], max_length: int, device: torch.device,
                  one_caption_at_a_time: bool = False) -> TextEncoding:
    """The backbone's states for `texts`, right-padded to the longest (padding zero and masked).

    `one_caption_at_a_time` runs each caption alone, unpadded, so its states never depend on which captions
    share its batch. Batched, they do by float rounding (~1e-6): padded to another length, attention reduces over
    another number of masked keys, and a GEMM of one row takes another kernel than one of many. The text cache
    stores each caption's states once, so only a batch-invariant forward lets it give what the encoder gives
    (Adam turns 1e-6 in near-zero gradients into visible weight differences). A frozen encoder runs this way;
    one that trains runs batched, for speed, and is never cached.
    """
    if one_caption_at_a_time:
        # Alone, a caption has no padding: its states are (1, n_i, d), every position real.
        return stack_right_padded([_run_backbone(backbone, tokenizer, [text], max_length, device).states[0] for text in texts])
    batch = tokenizer(texts, padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
    input_ids = to_device(batch["input_ids"], device)  # (b, n)
    mask = to_device(batch["attention_mask"], device).bool()  # (b, n)
    hidden = backbone(input_ids=input_ids, attention_mask=mask.long()).last_hidden_state  # (b, n, d)
    states = hidden.float() * mask.unsqueeze(-1)  # (b, n, d); float32 whatever the backbone runs in
    return TextEncoding(states=states, mask=mask)


class HFTextEncoder(TextEncoder):
    def __init__(self, config: TextEncoderConfig, source: str | None = None):
        """`source` overrides where the backbone loads from (a saved fine-tuned `backbone/`); default pretrained_path."""
        if config.kind not in PRETRAINED_KINDS:
            raise ValueError(f"HFTextEncoder needs kind in {PRETRAINED_KINDS}, got {config.kind!r}: use build_text_encoder(config)")
        # Imported here: transformers takes seconds to import and lstm runs never need it.
        from transformers import AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

        source = _resolve_source(source or config.pretrained_path)
        model_class = {"clip": CLIPTextModel, "t5": T5EncoderModel, "hf": AutoModel}[config.kind]
        # float32 whatever the checkpoint stores: fine-tuned layers need float32 weights for the optimizer.
        backbone = model_class.from_pretrained(source, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(source)
        if getattr(backbone.config, "is_encoder_decoder", False):
            raise ValueError(f"{source} is an encoder-decoder model; kind='hf' needs an encoder-only one (use kind='t5' for T5 checkpoints)")
        if tokenizer.pad_token is None:
            raise ValueError(f"the tokenizer of {source} has no pad token, so captions cannot be batched; pick a model whose tokenizer has one")
        max_positions = getattr(backbone.config, "max_position_embeddings", None)
        if max_positions is not None and config.max_length > max_positions:
            raise ValueError(f"max_length={config.max_length} exceeds the {max_positions} positions of {source}: lower max_length")

        backbone.eval()
        with torch.no_grad():
            probe = _run_backbone(backbone, tokenizer, [SCALE_PROBE_CAPTION], config.max_length, torch.device("cpu"))
        super().__init__(config, output_dim=probe.states.shape[-1])
        self.backbone = backbone
        self.tokenizer = tokenizer
        self._trainable_backbone_modules = self._set_trainable_layers()
        # The null token starts at the per-element scale of real token states (CLIP's final LayerNorm gives ~1,
        # T5's RMSNorm output is often ~0.1): a fixed std such as 0.02 would be a near-zero outlier for one
        # backbone and oversized for another.
        token_scale = probe.states[probe.mask].pow(2).mean().sqrt().item()  # RMS over the real tokens' elements
        nn.init.normal_(self.null_embedding, std=token_scale)

    def _set_trainable_layers(self) -> list[nn.Module]:
        if not self.config.freeze:
            self.backbone.requires_grad_(True)
            return [self.backbone]
        self.backbone.requires_grad_(False)
        if self.config.train_last_n_layers == 0:
            return []
        layers, final_norm = _find_layer_stack(self.backbone)
        if self.config.train_last_n_layers > len(layers):
            raise ValueError(f"train_last_n_layers={self.config.train_last_n_layers} but {self.config.pretrained_path} has {len(layers)} layers: lower it, or set freeze=False")
        modules = list(layers[-self.config.train_last_n_layers :]) + ([final_norm] if final_norm is not None else [])
        for module in modules:
            module.requires_grad_(True)
        return modules

    @property
    def backbone_is_trainable(self) -> bool:
        return any(parameter.requires_grad for parameter in self.backbone.parameters())

    def train(self, mode: bool = True) -> "HFTextEncoder":
        """Trap: the parent's .train() would otherwise switch dropout on in frozen layers, making the text
        features noisy for no benefit. Frozen layers stay in eval mode; only trained ones follow `mode`."""
        super().train(mode)
        if self.config.freeze:
            self.backbone.eval()
            for module in self._trainable_backbone_modules:
                module.train(mode)
        return self

    def _encode(self, texts: list[str]) -> TextEncoding:
        # A frozen backbone builds no autograd graph; a partly trained one needs it (and frozen layers before the
        # first trained one record nothing anyway, as their inputs need no grad).
        context = contextlib.nullcontext() if self.backbone_is_trainable else torch.no_grad()
        with context:
            return _run_backbone(self.backbone, self.tokenizer, texts, self.config.max_length, self.device,
                                 one_caption_at_a_time=not self.backbone_is_trainable)

    def _saved_state_module(self) -> nn.Module:
        # The backbone lives at pretrained_path (frozen) or in backbone/ (fine-tuned), in the format
        # transformers reads; text_encoder.safetensors holds what is ours alone.
        return _parameter_holder({"null_embedding": self.null_embedding})

    def _extra_config(self) -> dict:
        return {"_backbone_directory": BACKBONE_DIRECTORY} if self.backbone_is_trainable else {}

    def _save_extras(self, directory: Path) -> None:
        if self.backbone_is_trainable:
            self.backbone.save_pretrained(directory / BACKBONE_DIRECTORY)
            self.tokenizer.save_pretrained(directory / BACKBONE_DIRECTORY)

    @classmethod
    def _build_from_directory(cls, directory: Path, payload: dict) -> "HFTextEncoder":
        payload = dict(payload)
        backbone_directory = payload.pop("_backbone_directory", None)
        config = config_from_dict(TextEncoderConfig, payload)
        if backbone_directory is None:
            return cls(config)
        if not (directory / backbone_directory).is_dir():
            raise FileNotFoundError(f"{directory / CONFIG_FILE} says the fine-tuned backbone is in {directory / backbone_directory}, which is missing")
        return cls(config, source=str(directory / backbone_directory))


_ENCODER_CLASSES = {encoder_class.__name__: encoder_class for encoder_class in (LSTMTextEncoder, HFTextEncoder)}


def build_text_encoder(config: TextEncoderConfig, captions: list[str] | None = None) -> TextEncoder:
    """A fresh encoder. The lstm builds its vocabulary from `captions` (the training captions); the pretrained
    kinds ignore them."""
    if config.kind == "lstm":
        if not captions:
            raise ValueError("kind='lstm' builds its vocabulary from the training captions: pass build_text_encoder(config, captions=[...])")
        return LSTMTextEncoder(config, Vocabulary.build(captions, config.min_word_count, config.tokenizer))
    return HFTextEncoder(config)
