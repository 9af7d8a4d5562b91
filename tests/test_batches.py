"""The run's micro-batches: one sampler across epochs, resumable mid-epoch, grouped for accumulation."""

import torch
from torch.utils.data import DistributedSampler

from text2sign.training.batches import RunBatchSampler, micro_batch_groups


def first(iterator, count: int) -> list:
    return [next(iterator) for _ in range(count)]


def test_groups_are_full_but_for_each_epochs_short_last_one():
    batches = iter(range(100))  # 5 micro-batches per epoch, groups of 2: 2, 2, 1 then the next epoch
    groups = first(micro_batch_groups(batches, 2, 5, epoch=0, batches_done_in_epoch=0), 6)
    assert [group.batches for group in groups] == [[0, 1], [2, 3], [4], [5, 6], [7, 8], [9]]
    assert [(group.epoch, group.batches_done_in_epoch) for group in groups] == [(0, 2), (0, 4), (0, 5), (1, 2), (1, 4), (1, 5)]


def test_groups_resumed_mid_epoch_are_those_the_uninterrupted_run_had_next():
    straight = first(micro_batch_groups(iter(range(100)), 3, 7, 0, 0), 8)
    resumed = first(micro_batch_groups(iter(range(5, 100)), 3, 7, epoch=0, batches_done_in_epoch=5), 6)  # 5 batches in
    assert [group.batches for group in resumed] == [[5, 6], *[group.batches for group in straight[3:8]]]
    # A position saved at an epoch's very end (as checkpoints before the normalised position held) starts the next.
    at_end = next(micro_batch_groups(iter(range(7, 100)), 3, 7, epoch=0, batches_done_in_epoch=7))
    assert (at_end.batches, at_end.epoch) == ([7, 8, 9], 1)


def test_run_sampler_continues_each_epochs_own_order_from_the_saved_position():
    dataset = list(range(10))
    sampler = DistributedSampler(dataset, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
    straight = first(iter(RunBatchSampler(sampler, 3, epoch=0, batches_done=0)), 9)  # 3 batches per epoch (one clip dropped)
    resumed = first(iter(RunBatchSampler(sampler, 3, epoch=1, batches_done=1)), 5)
    assert resumed == straight[4:9]
    assert {epoch for batch in straight[:3] for epoch, _ in batch} == {0} and {epoch for batch in straight[3:6] for epoch, _ in batch} == {1}
    assert [index for _, index in straight[0]] != [index for _, index in straight[3]]  # each epoch is reshuffled
    torch.manual_seed(0)  # the order comes from (seed, epoch), not the global RNG
    assert first(iter(RunBatchSampler(sampler, 3, 1, 1)), 5) == resumed
