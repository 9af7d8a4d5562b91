"""Model cards: train.py writes pipeline/README.md with Hub front matter, evaluate.py fills (and refills) its
Evaluation section, and loading a pipeline never reads it."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
import yaml

from text2sign.model_card import EVALUATION_END, EVALUATION_START, MODEL_CARD_NAME, identify_dataset, render_model_card
from text2sign.models.pipeline import TextToSignPipeline
from text_encoder_fixtures import build_tiny_t5
from test_training import make_clips
from tiny_models import tiny_pipeline
from top_level_scripts import load_script

TINY_FLAGS = [
    "--num_frames", "4", "--image_size", "8", "--val_fraction", "0", "--model_channels", "32", "--channel_mult", "1", "1",
    "--num_res_blocks", "1", "--attention_levels", "1", "--batch_size", "2", "--warmup_steps", "1", "--learning_rate", "1e-3",
    "--max_steps", "2", "--num_workers", "0", "--log_every", "1", "--save_every", "1000", "--sample_every", "1000", "--sample_steps", "2",
]


def front_matter(card: str) -> dict:
    assert card.startswith("---\n"), card[:80]
    yaml_text, _, _ = card[4:].partition("\n---\n")
    return yaml.safe_load(yaml_text)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step train.py run with a frozen tiny T5 on clips whose folder README names How2Sign; its final checkpoint."""
    root = tmp_path_factory.mktemp("model_card")
    t5 = build_tiny_t5(root / "t5")
    data = make_clips(root / "data")
    (data / "README.md").write_text("Four clips from How2Sign (CC BY-NC 4.0).\n", encoding="utf-8")
    code = load_script("train.py").main(["--preset", "tiny", "--data_dir", str(data), "--output_dir", str(root / "run"), *TINY_FLAGS,
                                         "--text_encoder", "t5", "--text_encoder_path", str(t5)])
    assert code == 0
    return root, root / "run" / "step_0000002"


def test_checkpoint_written_by_train_py_has_a_card_naming_the_library_and_text_encoder(trained):
    root, checkpoint = trained
    card = (checkpoint / "pipeline" / MODEL_CARD_NAME).read_text(encoding="utf-8")
    metadata = front_matter(card)
    assert metadata["library_name"] == "text2sign"
    assert {"text-to-video", "sign-language", "diffusion"} <= set(metadata["tags"])
    assert metadata["text_encoder"] == {"kind": "t5", "pretrained_path": str(root / "t5"), "training": "frozen"}
    assert "base_model" not in metadata  # a local directory is not a Hub id
    assert metadata["license"] == "cc-by-nc-4.0" and metadata["datasets"] == ["How2Sign"]  # the data's README names How2Sign
    # The training summary comes from the run's config, not the defaults.
    assert "| preset | `tiny` |" in card and "| steps | 2 of 2 |" in card and "| training clips | 6 (6 distinct captions) |" in card
    assert "| learning rate | 0.001, constant after 1 warm-up steps |" in card
    assert "2 per process x 1 accumulation x 1 process(es) = 2" in card and "4 frames x 8x8 pixels" in card
    assert card.count(EVALUATION_START) == 1 and "Not evaluated yet" in card


def test_data_of_unknown_origin_gets_no_licence(tmp_path):
    data = make_clips(tmp_path / "data")
    code = load_script("train.py").main(["--data_dir", str(data), "--output_dir", str(tmp_path / "run"), *TINY_FLAGS])
    assert code == 0
    card = (tmp_path / "run" / "step_0000002" / "pipeline" / MODEL_CARD_NAME).read_text(encoding="utf-8")
    metadata = front_matter(card)
    assert "license" not in metadata and "datasets" not in metadata
    assert metadata["text_encoder"]["kind"] == "lstm" and "add their licence" in card


def test_how2sign_is_recognised_by_its_readme_or_its_clip_names(tmp_path):
    assert identify_dataset(tmp_path, ["--7E2sU6zP4_10-5-rgb_front", "a/_2FBDaOPYig_1-3-rgb_front"]).name == "How2Sign"
    assert identify_dataset(tmp_path, ["--7E2sU6zP4_10-5-rgb_front", "isl_hello"]) is None  # one clip of another source: unknown
    (tmp_path / "README.md").write_text("Indian Sign Language phrases.\n", encoding="utf-8")
    assert identify_dataset(tmp_path, ["isl_hello"]) is None
    (tmp_path / "README.md").write_text("Clips of the how2sign corpus.\n", encoding="utf-8")
    assert identify_dataset(tmp_path, ["isl_hello"]).license == "cc-by-nc-4.0"


def test_a_hub_text_encoder_is_the_base_model(trained):
    _, checkpoint = trained
    pipeline = TextToSignPipeline.from_pretrained(checkpoint / "pipeline")
    pipeline.text_encoder.config = dataclasses.replace(pipeline.text_encoder.config, pretrained_path="google-t5/t5-small")
    metadata = front_matter(render_model_card(pipeline))
    assert metadata["base_model"] == "google-t5/t5-small" and metadata["text_encoder"]["pretrained_path"] == "google-t5/t5-small"


def run_evaluate(checkpoint, data, report, *extra) -> None:
    code = load_script("evaluate.py").main(["--checkpoint", str(checkpoint), "--data_dir", str(data), "--split", "train", "--num_inference_steps", "2",
                                            "--output_dir", str(report), "--device", "cpu", *extra])
    assert code == 0


def evaluation_text(card: str) -> str:
    return card[card.index(EVALUATION_START) + len(EVALUATION_START): card.index(EVALUATION_END)]


def test_evaluate_writes_its_numbers_and_command_into_the_card_and_a_second_run_replaces_them(trained, tmp_path):
    root, checkpoint = trained
    card_path = checkpoint / "pipeline" / MODEL_CARD_NAME
    before = card_path.read_text(encoding="utf-8")
    run_evaluate(root / "run", root / "data", tmp_path / "first", "--guidance_scales", "1", "3", "--seeds", "0", "1")
    card = card_path.read_text(encoding="utf-8")
    section = evaluation_text(card)
    saved = json.loads((tmp_path / "first" / "evaluation.json").read_text(encoding="utf-8"))
    assert "Not evaluated yet" not in card and card.count(EVALUATION_START) == 1
    assert card[: card.index(EVALUATION_START)] == before[: before.index(EVALUATION_START)]  # nothing else of the card changes
    identification = saved["caption_identification"]
    assert f"| caption identification ({identification['num_candidates']}-way) | {identification['accuracy']:.3f} | {identification['chance']:.3f} |" in section
    assert f"{saved['loss_gap']['gap']:.4g} ±" in section
    for label in ("1", "3"):
        retrieval = saved["guidance"][label]["retrieval"]["pixel"]
        assert f"| guidance {label}: retrieval top-1 | {retrieval['top1']:.3f} | {retrieval['chance_top1']:.3f} |" in section
        assert f"{saved['guidance'][label]['psnr']:.2f} dB" in section
    # The command names the checkpoint scored (the output directory resolved to it) and every setting.
    assert f"python evaluate.py --checkpoint {checkpoint} --data_dir {root / 'data'} --split train" in section
    assert "--guidance_scales 1.0 3.0 --seeds 0 1" in section and str(tmp_path / "first" / "evaluation.md") in section
    assert "memorisation" in section  # --split train: the note says what the numbers measure

    run_evaluate(checkpoint, root / "data", tmp_path / "second", "--guidance_scales", "2", "--seeds", "3", "4")
    card = card_path.read_text(encoding="utf-8")
    section = evaluation_text(card)
    assert card.count(EVALUATION_START) == card.count(EVALUATION_END) == card.count("## Evaluation") == 1
    assert "--guidance_scales 2.0 --seeds 3 4" in section and "guidance 2: retrieval top-1" in section
    assert "--seeds 0 1" not in card and "guidance 3:" not in card


def test_evaluate_gives_a_pipeline_saved_without_a_card_one(tmp_path):
    pipeline_dir = tmp_path / "pipeline"
    tiny_pipeline().save_pretrained(pipeline_dir)
    (pipeline_dir / MODEL_CARD_NAME).unlink()  # as saved before cards existed
    data = make_clips(tmp_path / "data", count=2, frames=4, size=8)
    run_evaluate(pipeline_dir, data, tmp_path / "report", "--split", "all", "--guidance_scales", "1", "--seeds", "0", "1")
    card = (pipeline_dir / MODEL_CARD_NAME).read_text(encoding="utf-8")
    assert front_matter(card)["library_name"] == "text2sign" and "retrieval top-1" in evaluation_text(card)


def test_from_pretrained_ignores_the_card(tmp_path):
    pipeline = tiny_pipeline()
    pipeline.save_pretrained(tmp_path / "with_card")
    shutil.copytree(tmp_path / "with_card", tmp_path / "broken_card")
    (tmp_path / "broken_card" / MODEL_CARD_NAME).write_text("---\nlibrary_name: [unclosed\n", encoding="utf-8")  # not even YAML
    shutil.copytree(tmp_path / "with_card", tmp_path / "no_card")
    (tmp_path / "no_card" / MODEL_CARD_NAME).unlink()
    for name in ("with_card", "broken_card", "no_card"):
        loaded = TextToSignPipeline.from_pretrained(tmp_path / name)
        for key, value in pipeline.state_dict().items():
            torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0, msg=f"{name}: {key}")
