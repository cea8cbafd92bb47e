"""
Samplers: each draws new points near misclassified dev points in one representation space.

All share one method, `sample(errors, model, n, generator, exclude=frozenset()) -> list[dict]`: `errors` are dev
points (model inputs, plus `text` when the dev set has a text column); the result holds `n` samples per error (fewer
when the space runs out), each with model inputs, a `text` when one can be made, and `source`, the position of its
error in `errors`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .. import _device


def _embedding_layer(model) -> torch.nn.Module | None:
    get = getattr(model, "get_input_embeddings", None)
    try:
        return get() if get is not None else None
    except (NotImplementedError, AttributeError):
        return None


def _special_ids(tokenizer) -> set[int]:
    if tokenizer is None:
        return set()
    ids = set(tokenizer.all_special_ids)
    vocab = tokenizer.get_vocab()
    ids |= {i for token, i in vocab.items() if token.startswith("[unused") or token.startswith("<unused")}
    return ids


class EmbeddingSampler:
    """
    Input-embedding neighbourhoods: each sample is the error point's input embeddings plus Gaussian noise of standard
    deviation `radius × RMS(point's embeddings)` on every attended, non-special token. The student trains on these
    `inputs_embeds` directly. For the labeller, each sample also gets a `text`: the nearest token (cosine, in the
    student's input-embedding matrix) of every perturbed vector, decoded with the tokenizer (when there is one).

    Example:

    ```python
    >>> import torch
    >>> from hf_bort.agora.samplers import EmbeddingSampler
    >>> sampler = EmbeddingSampler(radius=0.1)
    >>> points = [{"inputs_embeds": torch.zeros(3) + 1.0, "labels": 0}]
    >>> len(sampler.sample(points, model=None, n=4, generator=torch.Generator().manual_seed(0)))
    4
    ```
    """

    def __init__(self, radius: float = 0.1, tokenizer=None):
        if radius <= 0:
            raise ValueError(f"EmbeddingSampler radius must be > 0, got {radius}.")
        self.radius = radius
        self.tokenizer = tokenizer

    @torch.no_grad()
    def sample(self, errors: Sequence[dict], model, n: int, generator: torch.Generator, exclude=frozenset()):
        layer = _embedding_layer(model) if model is not None else None
        special = _special_ids(self.tokenizer)
        samples = []
        for j, point in enumerate(errors):
            ids = torch.as_tensor(point["input_ids"]) if "input_ids" in point else None
            if "inputs_embeds" in point:
                base = torch.as_tensor(point["inputs_embeds"], dtype=torch.float32).cpu()
            elif ids is not None and layer is not None:
                base = layer(ids.to(layer.weight.device)).float().cpu()
            else:
                raise ValueError("EmbeddingSampler needs `inputs_embeds` or `input_ids` plus a model with embeddings.")
            if base.dim() == 1:
                perturb = torch.ones(1, dtype=torch.bool)
                base2 = base.unsqueeze(0)
            else:
                mask = torch.as_tensor(point.get("attention_mask", torch.ones(base.shape[0]))).bool()
                if ids is not None and special:
                    mask &= ~torch.isin(ids, torch.tensor(sorted(special)))
                perturb = mask if mask.any() else torch.ones(base.shape[0], dtype=torch.bool)
                base2 = base
            scale = self.radius * base2[perturb].pow(2).mean().sqrt().clamp_min(1e-6)
            noise = torch.randn((n, *base2.shape), generator=generator) * scale
            noisy = base2.unsqueeze(0) + noise * perturb.view(1, -1, 1)
            texts = self._decode(noisy, ids, perturb, layer) if ids is not None else [None] * n
            for k in range(n):
                sample = {"inputs_embeds": noisy[k] if base.dim() == 2 else noisy[k, 0], "source": j}
                if ids is not None:
                    sample["input_ids"] = ids.clone()
                    if "attention_mask" in point:
                        sample["attention_mask"] = torch.as_tensor(point["attention_mask"]).clone()
                if texts[k] is not None:
                    sample["text"] = texts[k]
                samples.append(sample)
        return samples

    def _decode(self, noisy, ids, perturb, layer):
        if self.tokenizer is None or layer is None:
            return [None] * noisy.shape[0]
        weight = torch.nn.functional.normalize(layer.weight.detach().float().cpu(), dim=-1)
        nearest = (torch.nn.functional.normalize(noisy, dim=-1) @ weight.T).argmax(-1)
        nearest = torch.where(perturb.view(1, -1), nearest, ids.view(1, -1))
        return [self.tokenizer.decode(row, skip_special_tokens=True) for row in nearest.tolist()]


class TokenSubstitutionSampler:
    """
    Text neighbourhoods: each sample replaces `max(1, round(rate × n))` of the error point's `n` non-special tokens.
    Replacements come from the `top_k` nearest tokens (cosine) in the student's own input-embedding matrix, or, with a
    `masked_lm` sharing the student's vocabulary, from its `top_k` predictions at the masked positions. The samples are
    token ids (the student trains on them as they are) and their decoded text (for the labeller).
    """

    def __init__(self, rate: float = 0.1, top_k: int = 8, tokenizer=None, masked_lm=None):
        if not 0 < rate <= 1:
            raise ValueError(f"TokenSubstitutionSampler rate must be in (0, 1], got {rate}.")
        self.rate, self.top_k, self.tokenizer, self.masked_lm = rate, top_k, tokenizer, masked_lm

    @torch.no_grad()
    def _neighbours(self, model, token_ids: torch.Tensor, banned: torch.Tensor) -> dict[int, torch.Tensor]:
        layer = _embedding_layer(model)
        if layer is None:
            raise ValueError("TokenSubstitutionSampler needs a model with input embeddings (get_input_embeddings).")
        weight = torch.nn.functional.normalize(layer.weight.detach().float().cpu(), dim=-1)
        unique = token_ids.unique()
        sims = weight[unique] @ weight.T
        sims[:, banned] = -2.0
        sims[torch.arange(len(unique)), unique] = -2.0
        top = sims.topk(self.top_k, dim=-1).indices
        return {int(t): top[i] for i, t in enumerate(unique)}

    @torch.no_grad()
    def sample(self, errors, model, n, generator, exclude=frozenset()):
        special = _special_ids(self.tokenizer)
        banned = torch.tensor(sorted(special), dtype=torch.long)
        all_ids = [torch.as_tensor(p["input_ids"], dtype=torch.long).cpu() for p in errors]
        if any("input_ids" not in p for p in errors):
            raise ValueError("TokenSubstitutionSampler needs `input_ids` in the dev set.")
        neighbours = None if self.masked_lm is not None else self._neighbours(model, torch.cat(all_ids), banned)
        samples = []
        for j, (point, ids) in enumerate(zip(errors, all_ids, strict=True)):
            mask = torch.as_tensor(point.get("attention_mask", torch.ones_like(ids))).bool()
            if len(banned):
                mask &= ~torch.isin(ids, banned)
            positions = mask.nonzero().flatten()
            if len(positions) == 0:
                continue
            count = max(1, round(self.rate * len(positions)))
            for _ in range(n):
                chosen = positions[torch.randperm(len(positions), generator=generator)[:count]]
                new = ids.clone()
                if neighbours is not None:
                    for pos in chosen.tolist():
                        options = neighbours[int(ids[pos])]
                        new[pos] = options[torch.randint(len(options), (1,), generator=generator)]
                else:
                    new[chosen] = self._mlm_fill(ids, mask, chosen, generator)
                sample = {"input_ids": new, "source": j}
                if "attention_mask" in point:
                    sample["attention_mask"] = torch.as_tensor(point["attention_mask"]).clone()
                if self.tokenizer is not None:
                    sample["text"] = self.tokenizer.decode(new, skip_special_tokens=True)
                samples.append(sample)
        return samples

    def _mlm_fill(self, ids, mask, chosen, generator):
        masked = ids.clone()
        masked[chosen] = self.tokenizer.mask_token_id
        device = _device.compute_device()  # the sampler's own masked LM runs on this rank's accelerator
        _device.to_device(self.masked_lm, device)
        inputs = _device.to_device({"input_ids": masked[None], "attention_mask": mask.long()[None]}, device)
        logits = self.masked_lm(**inputs).logits
        logits = logits[0, chosen].float().cpu()
        logits[torch.arange(len(chosen)), ids[chosen]] = -torch.inf
        special = sorted(_special_ids(self.tokenizer))
        if special:
            logits[:, special] = -torch.inf
        top = logits.topk(self.top_k, dim=-1).indices
        pick = torch.randint(self.top_k, (len(chosen),), generator=generator)
        return top[torch.arange(len(chosen)), pick]


def mean_pooled(model, input_ids, attention_mask) -> torch.Tensor:
    """Mean of the last hidden states over attended tokens (a sentence embedding), for any encoder or classifier."""
    out = model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
    hidden = getattr(out, "last_hidden_state", None)
    if hidden is None:
        hidden = out.hidden_states[-1]
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)


class PoolSampler:
    """
    Nearest neighbours from an unlabelled pool in sentence-embedding space (mean-pooled last hidden states). The
    embedding model is `encoder` (with `encoder_tokenizer`; pool embeddings computed once) or, by default, the student
    itself (pool re-embedded every round). Each pool point is drawn at most once over the whole run.

    `pool` is a list of strings or a `datasets.Dataset` with a text column.
    """

    def __init__(
        self,
        pool,
        encoder=None,
        encoder_tokenizer=None,
        tokenizer=None,
        *,
        text_column: str = "text",
        batch_size: int = 64,
        max_length: int = 128,
    ):
        texts = list(pool) if not hasattr(pool, "column_names") else list(pool[text_column])
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError(
                f"PoolSampler pool must be a non-empty list of strings (or a dataset with '{text_column}')."
            )
        if encoder is not None and encoder_tokenizer is None:
            raise ValueError("PoolSampler encoder needs its encoder_tokenizer.")
        self.texts = texts
        self.encoder, self.encoder_tokenizer, self.tokenizer = encoder, encoder_tokenizer, tokenizer
        self.batch_size, self.max_length = batch_size, max_length
        self._cache: torch.Tensor | None = None

    @torch.no_grad()
    def _embed(self, model, tokenizer, texts=None, ids_rows=None) -> torch.Tensor:
        if model is self.encoder:  # the pool's own encoder: on this rank's accelerator (the student stays where it is)
            _device.to_device(model, _device.compute_device())
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        chunks = []
        try:
            count = len(texts) if texts is not None else len(ids_rows)
            for start in range(0, count, self.batch_size):
                if texts is not None:
                    enc = tokenizer(
                        texts[start : start + self.batch_size],
                        truncation=True,
                        max_length=self.max_length,
                        padding=True,
                        return_tensors="pt",
                    )
                    ids, mask = enc["input_ids"], enc["attention_mask"]
                else:
                    from .collator import pad_points

                    batch = pad_points(ids_rows[start : start + self.batch_size])
                    ids, mask = batch["input_ids"], batch["attention_mask"]
                chunks.append(mean_pooled(model, ids.to(device), mask.to(device)).float().cpu())
        finally:
            model.train(was_training)
        return torch.nn.functional.normalize(torch.cat(chunks), dim=-1)

    def index(self) -> torch.Tensor | None:
        """
        Embeds the pool with the fixed `encoder` once and caches it (a no-op after the first call). Returns None when
        the pool is embedded by the student, which changes every round and cannot be indexed ahead. `AgoraTrainer`
        calls this before the first training step, so the rounds' callbacks only embed the dev errors.
        """
        if self.encoder is None:
            return None
        if self._cache is None:
            self._cache = self._embed(self.encoder, self.encoder_tokenizer, texts=self.texts)
        return self._cache

    def _pool_embeddings(self, model) -> torch.Tensor:
        if self.encoder is not None:
            return self.index()
        return self._embed(model, self.tokenizer, texts=self.texts)

    def _error_embeddings(self, model, errors) -> torch.Tensor:
        if self.encoder is not None:
            if any(p.get("text") is None for p in errors):
                raise ValueError("PoolSampler with an encoder needs the dev set's text column.")
            return self._embed(self.encoder, self.encoder_tokenizer, texts=[p["text"] for p in errors])
        if all(p.get("text") is not None for p in errors) and self.tokenizer is not None:
            return self._embed(model, self.tokenizer, texts=[p["text"] for p in errors])
        return self._embed(model, None, ids_rows=[{"input_ids": p["input_ids"]} for p in errors])

    def sample(self, errors, model, n, generator, exclude=frozenset()):
        if self.tokenizer is None:
            raise ValueError("PoolSampler needs the student's tokenizer (pass processing_class to AgoraTrainer).")
        if not errors:
            return []
        pool = self._pool_embeddings(model)
        queries = self._error_embeddings(model, errors)
        sims = queries @ pool.T
        taken = set(exclude)
        if taken:
            sims[:, sorted(taken)] = -torch.inf
        order = sims.argsort(dim=-1, descending=True)
        picked: list[tuple[int, int]] = []
        for j in range(len(errors)):
            count = 0
            for index in order[j].tolist():
                if count == n or len(taken) == len(self.texts):
                    break
                if index in taken:
                    continue
                taken.add(index)
                picked.append((j, index))
                count += 1
        return self.samples_for(picked)

    def samples_for(self, picked: Sequence[tuple[int, int]]) -> list[dict]:
        """Sample rows (tokenized text, `source` = error position, `pool_index`) for (error, pool index) pairs."""
        if not picked:
            return []
        texts = [self.texts[i] for _, i in picked]
        enc = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        return [
            {
                "input_ids": torch.tensor(enc["input_ids"][k]),
                "attention_mask": torch.tensor(enc["attention_mask"][k]),
                "text": texts[k],
                "source": j,
                "pool_index": i,
            }
            for k, (j, i) in enumerate(picked)
        ]
