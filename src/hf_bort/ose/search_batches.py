"""
Tokenisation and batching of an [`OSESearch`]'s data: the seeded split into training and held-out batches (labelled
rows for the task objective, texts otherwise; masked tokens for "mlm") and the data fingerprint of its run id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


class SearchBatches:
    """The batch side of [`hf_bort.ose.search.OSESearch`] (a base class of it; reads the search's settings)."""

    def _tokenise(self, texts: list[Any]) -> dict[str, torch.Tensor]:
        """Texts, or (text, text_pair) pairs fed to the tokenizer as pairs."""
        second = None
        if texts and isinstance(texts[0], tuple):
            texts, second = [a for a, _ in texts], [b for _, b in texts]
        encoded = self.tokenizer(
            texts, second, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        batch = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        if "token_type_ids" in encoded and getattr(self.base_config, "type_vocab_size", 0):
            batch["token_type_ids"] = encoded["token_type_ids"]
        return batch

    def _build_batches(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        if self.task_rows is not None:
            order = torch.randperm(len(self.task_rows), generator=generator).tolist()
            rows = [self.task_rows[i] for i in order]
            n_train = min(self.max_train_batches, self.max_steps, len(rows) // self.batch_size)
            train_rows = rows[: n_train * self.batch_size]
            eval_rows = self.eval_rows[: self.num_eval_batches * self.eval_batch_size]

            def labelled(chunk: list[tuple[str, int]], size: int) -> list[dict[str, torch.Tensor]]:
                out = []
                for start in range(0, len(chunk), size):
                    part = chunk[start : start + size]
                    batch = self._tokenise([text for text, _ in part])
                    batch["labels"] = torch.tensor([label for _, label in part], dtype=torch.long)
                    out.append(batch)
                return out

            self.train_batches = labelled(train_rows, self.batch_size)
            self.eval_batches = labelled(eval_rows, self.eval_batch_size)
            fingerprint = json.dumps([train_rows, eval_rows])
        else:
            order = torch.randperm(len(self.texts), generator=generator).tolist()
            texts = [self.texts[i] for i in order]
            n_eval = 0 if self.eval_texts is not None else self.num_eval_batches * self.batch_size
            n_train = min(self.max_train_batches, self.max_steps, (len(texts) - n_eval) // self.batch_size)

            def batches(chunk: list[str], size: int) -> list[dict[str, torch.Tensor]]:
                out = []
                for start in range(0, len(chunk), size):
                    batch = self._tokenise(chunk[start : start + size])
                    if self.objective == "mlm":
                        batch.update(self._mask(batch, generator))
                    out.append(batch)
                return out

            if self.eval_texts is not None:
                eval_texts = self.eval_texts[: self.num_eval_batches * self.eval_batch_size]
                self.eval_batches = batches(eval_texts, self.eval_batch_size)
            else:
                eval_texts = texts[:n_eval]
                self.eval_batches = batches(eval_texts, self.batch_size)
            self.train_batches = batches(texts[n_eval : n_eval + n_train * self.batch_size], self.batch_size)
            fingerprint = "\x00".join(texts[: n_eval + n_train * self.batch_size])
            if self.eval_texts is not None:
                fingerprint += "\x01" + "\x00".join(eval_texts)
        self.text_fingerprint = hashlib.sha256(fingerprint.encode())

    def _mask(self, batch, generator) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        special = torch.zeros_like(ids, dtype=torch.bool)
        for token in self.tokenizer.all_special_ids:
            special |= ids == token
        chosen = (torch.rand(ids.shape, generator=generator) < 0.15) & ~special
        chosen[:, 1] |= ~special[:, 1]  # at least one masked token per sequence
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        masked = torch.where(chosen, torch.full_like(ids, self.tokenizer.mask_token_id), ids)
        return {"masked_input_ids": masked, "labels": labels}
