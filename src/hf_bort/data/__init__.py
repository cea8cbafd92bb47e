"""Loading and checking the labelled dataset of `compress`: splits, columns, labels, a carved dev split.

A package of modules with one job each: `sources` (files, folders, DatasetDicts, Hub names -> splits), `columns`
(checked texts and labels, class names) and `task_data` ([`TaskData`] and the loaders); every name stays importable
from `hf_bort.data`."""

from __future__ import annotations

from .columns import (  # noqa: F401  (re-exported: their home before the split)
    _CLASS_ID,
    _check_label_kinds,
    _generic_names,
    _label_names,
    _names_from_column,
    _texts,
    _texts_and_labels,
    _values,
)
from .sources import DATA_EXTENSIONS, SPLIT_ALIASES, _load_files, _load_raw  # noqa: F401
from .task_data import (  # noqa: F401  (logger: the loaders' own, "hf_bort.data.task_data")
    TaskData,
    load_task_data,
    load_text_data,
    load_transfer_texts,
    logger,
    stratified_split,
)
