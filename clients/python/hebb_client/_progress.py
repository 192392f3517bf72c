"""The optional tqdm bar for ``learn(..., progress=True)``: samples/s and running prequential
accuracy. tqdm is imported only when a bar is asked for (``pip install hebb-client[progress]``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np


class LearnProgress:
    def __init__(self, total: int, enabled: bool):
        self.correct = 0
        self.labeled = 0
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm
            except ImportError as exc:
                raise ImportError("progress=True needs tqdm: pip install 'hebb-client[progress]'") from exc
            self.bar = tqdm(total=total, unit="sample", unit_scale=False, desc="learning", dynamic_ncols=True)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labeled if self.labeled else None

    def update(self, predictions: np.ndarray, labels: Sequence[int | None]) -> None:
        for predicted, label in zip(predictions.tolist(), labels):
            if label is not None:
                self.labeled += 1
                self.correct += int(predicted == label)
        if self.bar is not None:
            if self.accuracy is not None:
                self.bar.set_postfix(accuracy=f"{self.accuracy:.4f}", refresh=False)
            self.bar.update(len(predictions))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
