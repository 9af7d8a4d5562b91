"""Tiny CLIP and T5 text models (hidden 32, 2 layers) with working tokenizers, written to a directory.

transformers 5 ignores vocab_file=/merges_file= in tokenizer constructors, so each tokenizer is written as
files and loaded with AutoTokenizer.from_pretrained(directory), the same path a real checkpoint takes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing here may reach the network

import torch

# Sentences the T5 sentencepiece model is trained on; the tests' captions come from the same small world.
TOKENIZER_SENTENCES = [
    "are you hungry?",
    "how are you?",
    "hello, my name is",
    "thank you very much!",
    "where is the station?",
    "good morning everyone",
    "ahemdabad is a city",
    "a much longer sentence with many more words in it",
]
TINY_HIDDEN_SIZE = 32


def build_tiny_clip(directory: str | os.PathLike) -> Path:
    """CLIPTextModel + CLIPTokenizer: byte-level-free BPE over lowercase letters, a few merges for common words."""
    from transformers import AutoTokenizer, CLIPTextConfig, CLIPTextModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    symbols = list("abcdefghijklmnopqrstuvwxyz?!.,'")
    merges = [("h", "o"), ("ho", "w</w>"), ("a", "r"), ("ar", "e</w>"), ("y", "o"), ("yo", "u</w>")]
    tokens = ["<|startoftext|>", "<|endoftext|>"] + symbols + [symbol + "</w>" for symbol in symbols]
    tokens += [left + right for left, right in merges]
    vocab = {token: index for index, token in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (directory / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{left} {right}\n" for left, right in merges), encoding="utf-8")
    tokenizer_config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 40,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    AutoTokenizer.from_pretrained(directory)  # fail here, not in a test, if the files are wrong

    torch.manual_seed(0)
    config = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=TINY_HIDDEN_SIZE,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=40,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )
    CLIPTextModel(config).save_pretrained(directory)
    return directory


def build_tiny_t5(directory: str | os.PathLike) -> Path:
    """T5EncoderModel + T5Tokenizer from a sentencepiece model trained on TOKENIZER_SENTENCES (~0.03 s)."""
    import sentencepiece
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(TOKENIZER_SENTENCES),
        model_prefix=str(directory / "spiece"),
        vocab_size=48,
        hard_vocab_limit=False,  # the corpus is too small to guarantee exactly 48 pieces
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,  # T5 has no BOS
        minloglevel=2,
    )
    tokenizer_config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 0, "model_max_length": 64}
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(directory)

    torch.manual_seed(0)
    config = T5Config(
        vocab_size=max(64, len(tokenizer)),
        d_model=TINY_HIDDEN_SIZE,
        d_kv=16,
        d_ff=64,
        num_layers=2,
        num_heads=2,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    T5EncoderModel(config).save_pretrained(directory)
    return directory
