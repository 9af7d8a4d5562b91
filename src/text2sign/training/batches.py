"""The run's micro-batches in order, resumable mid-epoch, and grouped for gradient accumulation.

One DataLoader iterates `RunBatchSampler` for the whole run, so its workers persist from epoch to epoch (rebuilt
every epoch without persistent workers, it was 2.7x slower on small folders). Its keys are (epoch, index): a
persistent worker's copy of the dataset never sees set_epoch, so the epoch that seeds a clip's random window
travels with the key. `micro_batch_groups` cuts that stream into the optimizer steps' groups, nanoGPT's inner
`for micro_step in range(gradient_accumulation_steps)`, with an epoch's short last group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from torch.utils.data import DistributedSampler, Sampler


class RunBatchSampler(Sampler):
    """Batches of (epoch, index) keys from `batches_done` batches into `epoch` on, epoch after epoch, without end.
    Each epoch's order is the DistributedSampler's for that epoch (seeded by seed and epoch, as every rank agrees);
    its incomplete last batch is dropped."""

    def __init__(self, sampler: DistributedSampler, batch_size: int, epoch: int, batches_done: int):
        self.sampler, self.batch_size, self.epoch, self.batches_done = sampler, batch_size, epoch, batches_done

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch, skip = self.epoch, self.batches_done
        while True:
            self.sampler.set_epoch(epoch)
            indices = list(self.sampler)
            for start in range(skip * self.batch_size, len(indices) - self.batch_size + 1, self.batch_size):
                yield [(epoch, index) for index in indices[start:start + self.batch_size]]
            epoch, skip = epoch + 1, 0


@dataclass
class MicroBatchGroup:
    """The micro-batches of one optimizer step, and where the data stands once they are done."""

    batches: list[dict]
    epoch: int  # the epoch they belong to (a group never spans two)
    batches_done_in_epoch: int  # that epoch's batches consumed after this group

    def __len__(self) -> int:
        return len(self.batches)


def micro_batch_groups(batches: Iterator[dict], accumulation_steps: int, batches_per_epoch: int, epoch: int,
                       batches_done_in_epoch: int) -> Iterator[MicroBatchGroup]:
    """Groups of `accumulation_steps` consecutive micro-batches from `batches` (which starts `batches_done_in_epoch`
    into `epoch`). An epoch whose batches do not divide evenly ends with a short group, so no group spans two
    epochs and a run resumed mid-epoch groups its batches as the uninterrupted run did."""
    while True:
        if batches_done_in_epoch >= batches_per_epoch:
            epoch, batches_done_in_epoch = epoch + 1, 0
        size = min(accumulation_steps, batches_per_epoch - batches_done_in_epoch)
        group = [next(batches) for _ in range(size)]
        batches_done_in_epoch += size
        yield MicroBatchGroup(group, epoch, batches_done_in_epoch)
