"""What an [`AgoraTrainer`] trains on: the original rows followed by the accepted Agora samples, and the sampler that
draws one round's fixed number of indices from that growing set."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler

from .callback import AgoraState
from .collator import model_row


class AgoraTrainDataset(Dataset):
    """The original training rows followed by the accepted Agora samples (read live from the shared state)."""

    def __init__(self, base, state: AgoraState):
        self.base = base
        self.state = state

    def __len__(self) -> int:
        return len(self.base) + len(self.state.augmented) + len(self.state.self_trained)

    def __getitem__(self, index: int) -> dict:
        if index < len(self.base):
            return model_row(self.base[int(index)])
        index -= len(self.base)
        if index < len(self.state.augmented):
            return dict(self.state.augmented[index])
        return dict(self.state.self_trained[index - len(self.state.augmented)])


class RoundSampler(Sampler):
    """
    A fixed number of indices per round (`length`), drawn as consecutive random permutations of the *current*
    training set; the permutation seed depends on the round only, so a resumed run sees the same order.
    """

    def __init__(self, dataset: AgoraTrainDataset, length: int, seed: int):
        self.dataset, self.length, self.seed = dataset, length, seed

    def __len__(self) -> int:
        return self.length

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 7_919 + self.dataset.state.round)
        size, produced = len(self.dataset), 0
        while produced < self.length:
            for index in torch.randperm(size, generator=generator).tolist():
                if produced == self.length:
                    return
                produced += 1
                yield index
