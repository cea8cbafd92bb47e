"""Optimal sub-architecture extraction (OSE): search space, costs, extraction, distillation and the search."""

from .config import OSEConfig
from .costs import CandidateCosts, LatencyCache, candidate_config, candidate_costs, encoder_multiply_adds
from .distill import (
    DistillationConfig,
    DistillationTrainer,
    add_teacher_logits,
    bort_distillation_loss,
    hidden_state_loss,
    kd_loss,
    make_projection,
    task_distillation_loss,
)
from .extract import (
    ExtractionPlan,
    extract_subnetwork,
    load_source_as_bort,
    plan_extraction,
    save_extracted,
    slice_state_dict,
)
from .importance import Importance, compute_importance
from .pareto import covers, dominates, pareto_front
from .results import CandidateResult, SearchResult
from .search import OSESearch
from .search_config import SearchConfig
from .space import PAPER_BERT_GRID, Candidate, SearchSpace
from .surrogate import CandidateTrainer

__all__ = [
    "PAPER_BERT_GRID",
    "Candidate",
    "CandidateCosts",
    "CandidateResult",
    "CandidateTrainer",
    "DistillationConfig",
    "DistillationTrainer",
    "ExtractionPlan",
    "Importance",
    "LatencyCache",
    "OSEConfig",
    "OSESearch",
    "SearchConfig",
    "SearchResult",
    "SearchSpace",
    "add_teacher_logits",
    "bort_distillation_loss",
    "task_distillation_loss",
    "candidate_config",
    "candidate_costs",
    "compute_importance",
    "covers",
    "dominates",
    "encoder_multiply_adds",
    "extract_subnetwork",
    "hidden_state_loss",
    "kd_loss",
    "load_source_as_bort",
    "make_projection",
    "pareto_front",
    "plan_extraction",
    "save_extracted",
    "slice_state_dict",
]
