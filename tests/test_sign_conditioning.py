"""Sign-level tokens, time-aligned sign tracks and signer conditioning (issue 19's levers), each by its property."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from data_fixtures import numbered_gif, write_pair
from text2sign.data.dataset import SignVideoDataset, collate_batch
from text2sign.data.sign_timing import REST, SignDurations, SignSpan, frame_alignment, read_sign_timing, read_signers, uniform_spans
from text2sign.models.objective import DenoisingObjective
from text2sign.models.pipeline import TextToSignPipeline
from text2sign.models.sign_conditioning import SignConditioner, SignConditioningConfig, build_sign_conditioner
from text2sign.models.text_encoder import TextEncoderConfig, Vocabulary, build_text_encoder
from tiny_models import tiny_pipeline

GLOSS_CAPTIONS = ["JOHN GO", "MARY GO", "JOHN IX-1P LOVE"]


# ---- sign-level tokens -------------------------------------------------------------------------------------
def test_the_gloss_tokenizer_gives_one_token_per_sign():
    assert Vocabulary.tokenize("IX-1P GO1 NEW-YORK", "glosses") == ["ix-1p", "go1", "new-york"]
    assert Vocabulary.tokenize("IX-1P GO1 NEW-YORK") == ["ix", "-", "1p", "go1", "new", "-", "york"]  # words split the hyphens
    encoder = build_text_encoder(TextEncoderConfig(embed_dim=8, hidden_dim=4, num_layers=1, tokenizer="glosses"), captions=GLOSS_CAPTIONS)
    encoding = encoder.encode(["JOHN IX-1P LOVE"])
    assert encoding.mask.sum() == 3


def test_a_saved_vocabulary_keeps_its_tokenizer_and_an_old_one_reads_as_words(tmp_path):
    Vocabulary.build(GLOSS_CAPTIONS, tokenizer="glosses").save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json").tokenizer == "glosses"
    (tmp_path / "old.json").write_text('{"tokens": ["<pad>", "<unk>", "go"]}')
    assert Vocabulary.load(tmp_path / "old.json").tokenizer == "words"


def test_the_gloss_tokenizer_is_the_lstms_only():
    with pytest.raises(ValueError, match="lstm's word vocabulary"):
        TextEncoderConfig(kind="hf", pretrained_path="some/model", tokenizer="glosses")
    with pytest.raises(ValueError, match="unknown tokenizer"):
        TextEncoderConfig(tokenizer="letters")


# ---- timing -------------------------------------------------------------------------------------------------
def test_frame_alignment_by_hand():
    spans = (SignSpan("JOHN", 0.1, 0.4), SignSpan("GO", 0.5, 0.9))
    positions, phases = frame_alignment(spans, 6)  # frames at 0, 0.2, 0.4, 0.6, 0.8, 1.0
    assert positions.tolist() == [REST, 0, 0, 1, 1, REST]
    assert phases == pytest.approx([0, 1 / 3, 1, 0.25, 0.75, 0], abs=1e-6)
    assert frame_alignment(uniform_spans("A B"), 4)[0].tolist() == [0, 0, 1, 1]  # the prior: equal shares, in order


def test_durations_are_the_training_means_and_lay_out_a_new_sentence():
    durations = SignDurations.fit([(SignSpan("JOHN", 0.0, 0.2), SignSpan("GO", 0.5, 1.0)), (SignSpan("GO", 0.0, 1.0),)])
    # units are duration x signs in the clip: JOHN 0.4; GO (1.0 + 1.0) / 2 = 1.0; gap 0.6; no rest at the ends
    assert durations.sign_units == pytest.approx({"john": 0.4, "go": 1.0})
    spans = durations.predict("GO JOHN")
    total = 1.0 + 0.6 + 0.4
    assert [(span.sign, span.start, span.end) for span in spans] == [("GO", 0.0, pytest.approx(1.0 / total)), ("JOHN", pytest.approx(1.6 / total), pytest.approx(1.0))]
    assert durations.predict("MARY")[0].end == pytest.approx(1.0)  # a sign never timed takes the mean, alone it fills the clip


def write_folder(tmp_path, timing_rows: str | None = None, signer_rows: str | None = None):
    for index, caption in enumerate(["JOHN GO", "MARY GO"]):
        write_pair(tmp_path, f"clip{index}", numbered_gif(5, 8, 8), caption)
    if timing_rows is not None:
        (tmp_path / "signs.csv").write_text("name,sign,start,end\n" + timing_rows)
    if signer_rows is not None:
        (tmp_path / "signers.csv").write_text("name,signer\n" + signer_rows)
    return tmp_path


def test_the_dataset_reads_signers_and_timing_and_gives_every_frame_its_sign(tmp_path):
    folder = write_folder(tmp_path, "clip0,JOHN,0.0,0.4\nclip0,GO,0.6,1.0\n", "clip0,woman-1\n")
    dataset = SignVideoDataset(folder, num_frames=5, image_size=8)
    assert dataset.signers == ["woman-1", None]
    assert read_signers(folder) == {"clip0": "woman-1"} and set(read_sign_timing(folder)) == {"clip0"}
    batch = collate_batch([dataset[0], dataset[1]])
    assert batch["signer"] == ["woman-1", ""]
    assert batch["sign_positions"].tolist() == [[0, 0, REST, 1, 1], [0, 0, 1, 1, 1]]  # clip1 is untimed: the uniform prior (a shared boundary frame goes to the later sign)
    assert batch["sign_phases"].shape == (2, 5)


@pytest.mark.parametrize("rows, message", [
    ("clip0,JOHN,0.5,0.2\n", "start <= end"),
    ("clip0,GO,0.5,0.9\nclip0,JOHN,0.0,0.4\n", "in order"),
    ("clip0,JOHN,0.0,0.4\nclip0,WRITE,0.5,0.9\n", "not its caption's"),
    ("clip0,JOHN,soon,0.4\n", "must be numbers"),
])
def test_bad_timing_rows_are_errors_naming_the_problem(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        SignVideoDataset(write_folder(tmp_path, rows), num_frames=5, image_size=8)


# ---- the conditioner ------------------------------------------------------------------------------------------
def test_build_pipeline_makes_a_conditioner_only_when_asked():
    assert tiny_pipeline().sign_conditioner is None
    with pytest.raises(ValueError, match="signers.csv"):
        tiny_pipeline(captions=GLOSS_CAPTIONS, signer_conditioning=True)  # no signer names given


def test_a_fresh_conditioner_adds_nothing_and_an_unknown_signer_lists_the_known_ones():
    conditioner = build_sign_conditioner(32, GLOSS_CAPTIONS, ["a", "b", None], None, use_signers=True, use_sign_track=True)
    embedding = conditioner(GLOSS_CAPTIONS[:2], ["a", None], num_frames=4)
    assert embedding.shape == (2, 4, 32) and embedding.abs().max() == 0
    with pytest.raises(ValueError, match=r"unknown signer 'zz': this model knows a, b"):
        conditioner(["JOHN GO"], ["zz"], num_frames=4)


def test_a_dropped_caption_drops_the_sign_track_but_keeps_the_signer():
    conditioner = build_sign_conditioner(16, GLOSS_CAPTIONS, ["a", "b"], None, use_signers=True, use_sign_track=True)
    for parameter in conditioner.parameters():
        torch.nn.init.normal_(parameter)
    dropped = conditioner(["JOHN GO", "MARY GO"], ["a", "a"], drop_text=torch.tensor([True, True]), num_frames=4)
    assert torch.allclose(dropped[0], dropped[1])  # no trace of the sentence
    kept = conditioner(["JOHN GO", "MARY GO"], ["a", "a"], num_frames=4)
    assert not torch.allclose(kept[0], kept[1])
    other_signer = conditioner(["JOHN GO"], ["b"], drop_text=torch.tensor([True]), num_frames=4)
    assert not torch.allclose(dropped[0], other_signer[0])


def train_to_tell_apart(pipeline, videos, captions, signers, positions, phases, steps=120):
    """Fit the denoiser at high noise, where only the conditions can say what the clean video is."""
    objective = DenoisingObjective.for_pipeline(pipeline).train()
    optimizer = torch.optim.Adam(pipeline.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    last = objective.scheduler.config.num_train_timesteps - 1
    for _ in range(steps):
        timesteps = torch.randint(last * 3 // 4, last + 1, (videos.shape[0],), generator=generator)
        noise = torch.randn(videos.shape, generator=generator)
        text = objective.text_encoder.encode(captions)
        extra = objective.sign_embedding(captions, videos.shape[2], signers, positions, phases)
        loss = objective.per_sample_loss(videos, text, timesteps, noise, extra).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return objective.eval()


def x0_prediction(objective, captions, signers, positions, phases, num_frames):
    """The model's clean-video guess from pure noise at the last timestep: what the conditions alone say."""
    timesteps = torch.full((len(captions),), objective.scheduler.config.num_train_timesteps - 1)
    text = objective.text_encoder.encode(captions)
    extra = objective.sign_embedding(captions, num_frames, signers, positions, phases)
    noise = torch.randn(len(captions), 3, num_frames, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return objective.unet(objective.scheduler.add_noise(torch.zeros_like(noise), noise, timesteps), timesteps, text.states, text.mask, extra)


def test_the_signer_embedding_carries_who_signs():
    """Same caption, two signers, two different videos: only the signer can tell them apart."""
    torch.manual_seed(0)
    pipeline = tiny_pipeline(captions=["JOHN GO"] * 2, prediction_type="sample", caption_dropout_prob=0.0, signer_dropout_prob=0.0)
    pipeline.sign_conditioner = build_sign_conditioner(pipeline.unet.config.embedding_dim, ["JOHN GO"], ["a", "b"], None, True, False)
    videos = torch.stack([torch.full((3, 4, 8, 8), 0.6), torch.full((3, 4, 8, 8), -0.6)])  # (2, c, f, h, w)
    objective = train_to_tell_apart(pipeline, videos, ["JOHN GO"] * 2, ["a", "b"], None, None)
    prediction = x0_prediction(objective, ["JOHN GO"] * 2, ["a", "b"], None, None, 4)
    assert prediction[0].mean() > 0.2 and prediction[1].mean() < -0.2


def test_the_sign_track_puts_each_sign_on_the_frames_its_timing_says():
    """One caption, two timings: bright frames while JOHN is signed, dark while GO is. Only the track knows when."""
    torch.manual_seed(0)
    pipeline = tiny_pipeline(captions=["JOHN GO"], prediction_type="sample", sign_track=True, caption_dropout_prob=0.0)
    positions = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]])  # (2, f)
    phases = torch.zeros(2, 4)
    videos = torch.where(positions[:, None, :, None, None] == 0, 0.6, -0.6).expand(2, 3, 4, 8, 8).contiguous()  # (2, c, f, h, w)
    objective = train_to_tell_apart(pipeline, videos, ["JOHN GO"] * 2, None, positions, phases)
    prediction = x0_prediction(objective, ["JOHN GO"] * 2, None, positions, phases, 4).mean(dim=(1, 3, 4))  # (2, f)
    assert prediction[0, 1] > 0.2 and prediction[1, 1] < -0.2  # frame 1: JOHN in the first clip, GO in the second


def test_a_conditioned_pipeline_samples_with_and_without_a_signer_and_round_trips(tmp_path):
    pipeline = tiny_pipeline(captions=GLOSS_CAPTIONS)
    pipeline.sign_conditioner = build_sign_conditioner(pipeline.unet.config.embedding_dim, GLOSS_CAPTIONS, ["woman-1", "man-1"],
                                                       [(SignSpan("JOHN", 0.1, 0.4), SignSpan("GO", 0.5, 0.9)), None, None], True, True)
    with torch.no_grad():  # untrained, every output projection is zero: give the networks weights that respond
        for parameter in pipeline.parameters():
            parameter.normal_(std=0.1)
    assert pipeline.signers == ("man-1", "woman-1")
    common = dict(num_inference_steps=2, generator=None, progress=False, output_type="tensor", guidance_scale=2.0)
    chosen = pipeline(["JOHN GO"], signer="woman-1", latents=torch.zeros(1, 3, 4, 8, 8), **common)
    anyone = pipeline(["JOHN GO"], latents=torch.zeros(1, 3, 4, 8, 8), **common)
    assert not torch.allclose(chosen, anyone)
    with pytest.raises(ValueError, match="this model knows man-1, woman-1"):
        pipeline(["JOHN GO"], signer="nobody", **common)
    pipeline.save_pretrained(tmp_path)
    loaded = TextToSignPipeline.from_pretrained(tmp_path)
    assert loaded.signers == pipeline.signers and loaded.sign_conditioner.config.timed_training
    assert torch.equal(loaded(["JOHN GO"], signer="woman-1", latents=torch.zeros(1, 3, 4, 8, 8), **common), chosen)
    assert "`woman-1`" in (tmp_path / "README.md").read_text()  # the model card lists who can sign


def test_a_model_without_signers_says_so_when_asked_for_one():
    with pytest.raises(ValueError, match="trained without signer conditioning"):
        tiny_pipeline()(["hello there"], signer="woman-1", num_inference_steps=1, progress=False)


def test_the_conditioner_config_rejects_an_empty_conditioner():
    with pytest.raises(ValueError, match="needs signers, a sign vocabulary or both"):
        SignConditioningConfig(16)
    assert isinstance(build_sign_conditioner(16, GLOSS_CAPTIONS, None, None, False, True), SignConditioner)


# ---- composition augmentation ------------------------------------------------------------------------------
def render_toy_tracks(tmp_path):
    from test_tracks import write_tracks
    from text2sign.data.render_tracks import render_folder

    still = [(190, 180, 130, 170, 160, 60)] * 12  # rest
    moving = [(190 + 3 * step, 180, 130, 170, 160, 60) for step in range(12)]  # the left hand walks right
    tracks = write_tracks(tmp_path / "tracks", {1: still, 2: moving}, [
        (1, "woman-1", "JOHN", 1, 4), (1, "woman-1", "GO", 7, 10), (2, "woman-1", "MARY", 1, 4), (2, "woman-1", "WRITE", 7, 10)])
    render_folder(tracks, tmp_path / "clips", image_size=16, num_frames=6)
    return tmp_path / "clips"


def test_render_folder_writes_the_signers_timing_and_tracks_the_augmentation_reads(tmp_path):
    clips = render_toy_tracks(tmp_path)
    assert set(read_signers(clips).values()) == {"woman-1"} and len(read_signers(clips)) == 2
    timing = read_sign_timing(clips)
    (name, spans), = [(name, spans) for name, spans in timing.items() if spans[0].sign == "JOHN"]
    assert [(span.sign, span.start, span.end) for span in spans] == [("JOHN", pytest.approx(1 / 11), pytest.approx(4 / 11)),
                                                                      ("GO", pytest.approx(7 / 11), pytest.approx(10 / 11))]
    assert (clips / "placed_tracks.npz").is_file()


def test_a_splice_keeps_each_signs_motion_and_timing():
    from text2sign.data.composition import SignComposer

    composer = SignComposer.__new__(SignComposer)  # the splice alone, on hand-made tracks
    still = np.zeros((16, 3, 2), dtype=np.float32)
    moving = np.zeros((16, 3, 2), dtype=np.float32)
    moving[:, 0, 0] = np.arange(16)  # b's left hand x is its row number
    timing = (1 / 15, 4 / 15, 11 / 15, 14 / 15)  # rows 1-4 and 11-14
    composer.tracks = {"a": still, "b": moving}
    composer.timings = {"a": (SignSpan("JOHN", *timing[:2]), SignSpan("GO", *timing[2:])), "b": (SignSpan("MARY", *timing[:2]), SignSpan("WRITE", *timing[2:]))}
    positions, spans = composer.splice("a", 1, "b", 1)  # JOHN from a, WRITE from b, each cut mid-gap at row 8, cross-faded over 4 rows
    assert [span.sign for span in spans] == ["JOHN", "WRITE"] and positions.shape == (12, 3, 2)
    last = positions.shape[0] - 1
    assert (round(spans[1].start * last), round(spans[1].end * last)) == (7, 10)  # b's rows 11-14, moved up by 8 - 4
    assert positions[8:11, 0, 0].tolist() == [12, 13, 14]  # past the blend, b's WRITE row for row
    assert positions[:4, 0, 0].tolist() == [0, 0, 0, 0]  # before it, a's JOHN
    assert 0 < positions[7, 0, 0] < 11  # the join: a's rest faded into b's motion


def test_composition_replaces_the_asked_share_of_items_with_new_sentences(tmp_path):
    clips = render_toy_tracks(tmp_path)
    dataset = SignVideoDataset(clips, num_frames=6, image_size=16, composition_share=0.5)
    items = [dataset[(epoch, index)] for epoch in range(20) for index in range(len(dataset))]
    composed = [item for item in items if item["name"].startswith("composed:")]
    assert 8 <= len(composed) <= 32  # about half of 40
    captions = {item["caption"] for item in composed}
    assert captions <= {"JOHN GO", "MARY WRITE", "JOHN WRITE", "MARY GO"} and captions & {"JOHN WRITE", "MARY GO"}
    assert all(item["video"].shape == (3, 6, 16, 16) and item["signer"] == "woman-1" for item in composed)
    assert dataset[(3, 1)]["name"] == dataset[(3, 1)]["name"]  # the same key, the same item
    with pytest.raises(ValueError, match="placed_tracks.npz"):
        SignVideoDataset(write_folder(tmp_path / "plain"), num_frames=5, image_size=8, composition_share=0.5)


def test_the_loss_based_evaluation_gives_a_sign_track_model_its_tracks():
    from text2sign.evaluation.conditioning import conditional_loss_gap, sign_table

    pipeline = tiny_pipeline(captions=GLOSS_CAPTIONS, sign_track=True)
    with torch.no_grad():
        for parameter in pipeline.parameters():
            parameter.normal_(std=0.1)
    table = sign_table(pipeline, GLOSS_CAPTIONS[:2], 4)  # two captions, then the null branch
    assert table.shape == (3, 4, pipeline.unet.config.embedding_dim) and not torch.allclose(table[0], table[1])
    assert sign_table(tiny_pipeline(), GLOSS_CAPTIONS[:2], 4) is None
    videos = torch.rand(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with_track = conditional_loss_gap(pipeline, videos, GLOSS_CAPTIONS[:2], batch_size=4)
    pipeline.sign_conditioner = None  # the same networks scored without the track give other losses: the track was used
    without = conditional_loss_gap(pipeline, videos, GLOSS_CAPTIONS[:2], batch_size=4)
    assert with_track.right != pytest.approx(without.right)


def test_every_module_imports_first_in_a_fresh_interpreter():
    """composition -> render_tracks -> video_io -> data -> dataset was a cycle when dataset imported composition at the top."""
    import subprocess
    import sys

    for module in ("text2sign.video_io", "text2sign.data.composition", "text2sign.data.dataset"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
