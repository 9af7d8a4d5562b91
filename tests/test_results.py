"""Typed evaluation results write the JSON layout evaluation.json always had."""

from __future__ import annotations

import torch

from text2sign.evaluation.results import RetrievalScores, ScoredSplit


def test_retrieval_writes_top_k_keys_and_never_its_distances():
    scores = RetrievalScores(top={1: 0.5, 5: 1.0}, chance_top={1: 0.125, 5: 0.625}, ranks=[1, 2], mean_rank=1.5, chance_mean_rank=4.5,
                             num_clips=8, space="pixel", distances=torch.zeros(8, 8))
    assert scores.to_json() == {"top1": 0.5, "chance_top1": 0.125, "top5": 1.0, "chance_top5": 0.625, "ranks": [1, 2], "mean_rank": 1.5,
                                "chance_mean_rank": 4.5, "num_clips": 8, "space": "pixel"}
    assert list(scores.to_json())[:4] == ["top1", "chance_top1", "top5", "chance_top5"]


def test_a_split_without_a_record_writes_its_null_record_but_none_of_the_records_numbers():
    split = ScoredSplit(scored="all", description="every clip in --data_dir", record=None, note="no split record")
    assert split.to_json() == {"scored": "all", "description": "every clip in --data_dir", "record": None, "note": "no split record"}


def test_a_split_with_a_record_keeps_a_null_group_pattern_and_leaves_out_unset_extras():
    split = ScoredSplit(scored="val", description="held out", record="run/split.json", val_fraction=0.05, group_pattern=None,
                        train_clips=10, val_clips=2, missing_from_data_dir=[])
    assert split.to_json() == {"scored": "val", "description": "held out", "record": "run/split.json", "val_fraction": 0.05, "group_pattern": None,
                               "train_clips": 10, "val_clips": 2, "missing_from_data_dir": []}
