"""
Sentence embeddings as a sentence-transformers folder defines them (the modules after the transformer: pooling,
`Dense`, `Normalize`), the loss that distils them and the agreement metrics that compare a student with its teacher.

Used by the search's `"embedding"` objective and by `compress(task="feature-extraction")`. Needs the
`sentence-transformers` package (`pip install "hf-bort[sentence-transformers]"`), imported lazily.
"""

from __future__ import annotations

import copy
import os

import torch
from torch import nn

from ..models.sentence_transformers_folder import pooled_columns, pooling_modes, read_layout

INSTALL_HINT = 'Sentence embeddings need sentence-transformers: pip install "hf-bort[sentence-transformers]".'


def import_sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return sentence_transformers


def load_sentence_transformer(path: str | os.PathLike, **kwargs):
    """`SentenceTransformer(path)` on the CPU, after checking that `path` is a local sentence-transformers folder."""
    if read_layout(path) is None:
        raise ValueError(
            f"{path} is not a local sentence-transformers folder (no modules.json): embedding compression needs "
            "one, to know how sentence embeddings are pooled. Save the model with SentenceTransformer.save first."
        )
    st = import_sentence_transformers()
    return st.SentenceTransformer(str(path), device="cpu", **kwargs)


class SentenceEmbeddingHead(nn.Module):
    """
    The frozen modules a sentence-transformers model applies after its transformer (pooling, `Dense`, `Normalize`,
    …), as a module mapping `(last_hidden_state, attention_mask)` to sentence embeddings. With [`sliced`] the first
    `Dense` after pooling keeps the input columns of an extracted encoder's residual dimensions, as
    [`save_extracted`] writes it.

    Example:

    ```python
    >>> from hf_bort.assets import packaged_minilm_path
    >>> from hf_bort.ose.embedding import SentenceEmbeddingHead, load_sentence_transformer
    >>> head = SentenceEmbeddingHead.from_model(load_sentence_transformer(packaged_minilm_path()))
    >>> [type(m).__name__ for m in head.stages]
    ['Pooling', 'Normalize']
    ```
    """

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        for parameter in self.parameters():
            parameter.requires_grad_(False)

    @classmethod
    def from_model(cls, model) -> SentenceEmbeddingHead:
        """The modules after the transformer of a loaded `SentenceTransformer` (copied, frozen)."""
        modules = list(model.children())
        names = [type(m).__name__ for m in modules]
        if not names or names[0] != "Transformer" or names.count("Transformer") != 1:
            raise ValueError(f"Expected a sentence-transformers model whose first module is its Transformer: {names}.")
        return cls([copy.deepcopy(m) for m in modules[1:]])

    def sliced(self, kept_dims: list[int] | None, hidden_size: int) -> SentenceEmbeddingHead:
        """
        A copy for an encoder that keeps `kept_dims` of the `hidden_size` residual dimensions, whose output has the
        teacher's width again: the first `Dense` after pooling keeps the input columns of the kept dims (frozen);
        without such a `Dense`, a trainable linear projection back to the pooled width is added after pooling,
        initialised to put each kept dimension back in its place ([`projection_stage`] marks it), so the student's
        embeddings live in the teacher's space and the cosine to the teacher is defined.
        """
        head = copy.deepcopy(self)
        if kept_dims is None or list(kept_dims) == list(range(hidden_size)):
            return head
        columns = None
        for position, stage in enumerate(head.stages):
            kind = type(stage).__name__
            if kind == "Pooling":
                columns = pooled_columns(len(pooling_modes(stage.get_config_dict())), hidden_size, list(kept_dims))
                pooled_width = columns and len(columns) // len(kept_dims) * hidden_size
                if not any(type(later).__name__ == "Dense" for later in head.stages[position + 1 :]):
                    head.stages.insert(position + 1, projection_stage(columns, pooled_width))
                    return head
            elif kind == "Dense" and columns is not None:
                linear = stage.linear
                index = torch.as_tensor(columns, dtype=torch.long)
                new = nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None)
                with torch.no_grad():
                    new.weight.copy_(linear.weight.index_select(1, index))
                    if linear.bias is not None:
                        new.bias.copy_(linear.bias)
                new.requires_grad_(False)
                stage.linear, stage.in_features = new, len(columns)
                return head
            elif kind not in ("Normalize",):
                raise ValueError(f"Cannot adapt a {kind} module to an extracted width (see save_extracted).")
        raise ValueError("The sentence-transformers model has no Pooling module to adapt to an extracted width.")

    def forward(self, token_embeddings: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        features = {"token_embeddings": token_embeddings, "attention_mask": attention_mask}
        for stage in self.stages:
            features = stage(features)
        return features["sentence_embedding"]


PROJECTION_MARK = "hf_bort_projection"


def projection_stage(columns: list[int], output_width: int) -> nn.Module:
    """
    A sentence-transformers `Dense` (identity activation, no bias) from the `len(columns)` pooled dimensions of an
    extracted encoder back to the teacher's `output_width`: column j starts as the unit vector of `columns[j]`, so
    at initialisation the embedding is the teacher-space vector with the dropped dimensions at zero. Trainable.
    """
    import_sentence_transformers()
    try:
        from sentence_transformers.sentence_transformer.modules import Dense
    except ImportError:  # sentence-transformers < 5.4 layout
        from sentence_transformers.models import Dense
    weight = torch.zeros(output_width, len(columns))
    weight[torch.as_tensor(columns), torch.arange(len(columns))] = 1.0
    stage = Dense(len(columns), output_width, bias=False, activation_function=nn.Identity(), init_weight=weight)
    setattr(stage, PROJECTION_MARK, True)
    stage.requires_grad_(True)
    return stage


# `CompressionConfig.embedding_loss`: [`embedding_loss`], or it plus a weighted [`similarity_loss`]
EMBEDDING_LOSSES = ("cosine", "cosine+similarity")


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance 1 − cos(student, teacher) over the rows (0 when the directions agree)."""
    return (1 - nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()


def similarity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """
    Mean squared difference of the in-batch cosine-similarity matrices of the n student and n teacher rows, over the
    n(n − 1) off-diagonal entries (a relational-distillation term: how the batch's texts relate to each other, not
    where each vector points; the widths may differ). 0 for a batch of one row (no pair).

    ```python
    >>> import torch
    >>> from hf_bort.ose.embedding import similarity_loss
    >>> x = torch.randn(5, 4)
    >>> round(float(similarity_loss(2 * x, x)), 6)  # the same angles: no loss
    0.0
    ```
    """
    n = student.shape[0]
    if n != teacher.shape[0]:
        raise ValueError(f"Need as many student as teacher rows, got {student.shape} and {teacher.shape}.")
    if n < 2:
        return student.sum() * 0.0  # keeps the graph (and the device) of `student`
    s = nn.functional.normalize(student, dim=-1)
    t = nn.functional.normalize(teacher.to(student.dtype), dim=-1)
    off_diagonal = ~torch.eye(n, dtype=torch.bool, device=student.device)
    return ((s @ s.T - t @ t.T)[off_diagonal] ** 2).mean()


def _ranks(values: torch.Tensor) -> torch.Tensor:
    order = values.argsort()
    ranks = torch.empty_like(values, dtype=torch.float64)
    ranks[order] = torch.arange(values.numel(), dtype=torch.float64)
    return ranks


def embedding_agreement(student: torch.Tensor, teacher: torch.Tensor) -> dict[str, float]:
    """
    How well student embeddings of n held-out texts agree with the teacher's (rows in the same order):

    - `mean_cosine`: mean cos(student_i, teacher_i) (needs equal widths; `None` otherwise);
    - `nearest_neighbour_agreement`: fraction of texts whose nearest other text (cosine) is the same for both;
    - `spearman_pairwise`: Spearman correlation of the n(n−1)/2 pairwise cosine similarities.

    ```python
    >>> import torch
    >>> from hf_bort.ose.embedding import embedding_agreement
    >>> x = torch.randn(6, 4)
    >>> embedding_agreement(x, x)["spearman_pairwise"]
    1.0
    ```
    """
    if student.shape[0] != teacher.shape[0] or student.shape[0] < 3:
        raise ValueError(f"Need the same n ≥ 3 rows of student and teacher, got {student.shape}, {teacher.shape}.")
    s = nn.functional.normalize(student.double(), dim=-1)
    t = nn.functional.normalize(teacher.double(), dim=-1)
    mean_cosine = float((s * t).sum(-1).mean()) if s.shape[1] == t.shape[1] else None
    sim_s, sim_t = s @ s.T, t @ t.T
    n = s.shape[0]
    eye = torch.eye(n, dtype=torch.bool)
    nn_s = sim_s.masked_fill(eye, -2).argmax(-1)
    nn_t = sim_t.masked_fill(eye, -2).argmax(-1)
    upper = torch.triu_indices(n, n, offset=1)
    rank_s, rank_t = _ranks(sim_s[upper[0], upper[1]]), _ranks(sim_t[upper[0], upper[1]])
    rank_s, rank_t = rank_s - rank_s.mean(), rank_t - rank_t.mean()
    spearman = float((rank_s * rank_t).sum() / (rank_s.norm() * rank_t.norm()).clamp_min(1e-12))
    return {
        "mean_cosine": mean_cosine,
        "nearest_neighbour_agreement": float((nn_s == nn_t).double().mean()),
        "spearman_pairwise": round(spearman, 12),
        "texts": n,
    }


__all__ = [
    "EMBEDDING_LOSSES",
    "PROJECTION_MARK",
    "SentenceEmbeddingHead",
    "projection_stage",
    "embedding_agreement",
    "embedding_loss",
    "load_sentence_transformer",
    "similarity_loss",
]
