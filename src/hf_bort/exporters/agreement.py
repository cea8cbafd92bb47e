"""Agreement of two sets of model outputs (PyTorch vs ONNX Runtime fp32 vs int8): the largest absolute difference
on real tokens, shared argmax predictions, shared nearest neighbours and cosine of mean-pooled sentence embeddings.
numpy only: used by the export's validation and by the int8 variant selection alike."""

from __future__ import annotations

from typing import Any


def max_abs_diff(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> float:
    """Largest absolute difference between two output sets, padded positions ignored."""
    import numpy as np

    worst = 0.0
    for name, ref in reference.items():
        diff = np.abs(ref - candidate[name])
        if diff.ndim >= mask.ndim + 1 and diff.shape[: mask.ndim] == mask.shape:  # ignore padded positions
            diff = diff[mask.astype(bool)]
        worst = max(worst, float(diff.max()) if diff.size else 0.0)
    return worst


def _predicted(logits: Any) -> Any:
    """The argmax, or `logit > 0` for a single output (a reranker; as `hf_bort.ose.logits.predict`, numpy only)."""
    return (logits[..., 0] > 0).astype("int64") if logits.shape[-1] == 1 else logits.argmax(-1)


def argmax_agreement(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> float:
    """Fraction of argmax predictions (`logit > 0` for a single-output head) shared by two output sets (see
    [`OnnxExportResult`])."""
    import numpy as np

    agree, total = 0, 0
    for name, ref in reference.items():
        cand = candidate[name]
        if name in ("last_hidden_state",):
            ref_nn, cand_nn = nearest_neighbours(ref, mask), nearest_neighbours(cand, mask)
            agree += int((ref_nn == cand_nn).sum())
            total += ref_nn.size
            continue
        if name == "pooler_output":
            continue
        ref_arg, cand_arg = _predicted(ref), _predicted(cand)
        if ref_arg.shape == mask.shape:  # token-level: only real tokens count
            keep = mask.astype(bool)
            ref_arg, cand_arg = ref_arg[keep], cand_arg[keep]
        agree += int((ref_arg == cand_arg).sum())
        total += int(np.size(ref_arg))
    return agree / total if total else float("nan")


def nearest_neighbours(hidden: Any, mask: Any) -> Any:
    """For each sentence, the index of the most cosine-similar other sentence (mean-pooled embeddings)."""
    import numpy as np

    hidden = hidden.reshape(-1, *hidden.shape[-2:])
    mask = mask.reshape(-1, mask.shape[-1]).astype(hidden.dtype)[..., None]
    pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    similarity = pooled @ pooled.T
    np.fill_diagonal(similarity, -np.inf)
    return similarity.argmax(-1)


def pooled_cosine(reference: Any, candidate: Any, mask: Any) -> tuple[float, float]:
    """(min, mean) cosine similarity between the mean-pooled sentence embeddings of two hidden-state arrays."""
    import numpy as np

    def pooled(hidden: Any) -> Any:
        hidden = hidden.reshape(-1, *hidden.shape[-2:])
        weights = mask.reshape(-1, mask.shape[-1]).astype(hidden.dtype)[..., None]
        vectors = (hidden * weights).sum(1) / np.maximum(weights.sum(1), 1)
        return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)

    cosine = (pooled(reference) * pooled(candidate)).sum(-1)
    return float(cosine.min()), float(cosine.mean())


def agreement_metrics(reference: dict[str, Any], candidate: dict[str, Any], mask: Any) -> dict[str, float]:
    """Agreement of int8 outputs with fp32 ones: `label_agreement` for logits outputs; `cosine_mean`,
    `cosine_min` and `neighbour_agreement` for `last_hidden_state` (mean-pooled sentence embeddings)."""
    out: dict[str, float] = {}
    logits = {name: value for name, value in reference.items() if name not in ("last_hidden_state", "pooler_output")}
    if logits:
        out["label_agreement"] = argmax_agreement(logits, candidate, mask)
    if "last_hidden_state" in reference:
        hidden = {"last_hidden_state": reference["last_hidden_state"]}
        out["neighbour_agreement"] = argmax_agreement(hidden, candidate, mask)
        low, mean = pooled_cosine(reference["last_hidden_state"], candidate["last_hidden_state"], mask)
        out.update(cosine_mean=mean, cosine_min=low)
    return out
