"""`hf_bort/data.py` became a package of modules with one job each (sources, columns, task_data); every name stays
importable from `hf_bort.data`, and every module is under 500 lines."""

from __future__ import annotations

from pathlib import Path

import hf_bort.data
from hf_bort.data import columns, sources, task_data

MOVED = {
    sources: ["DATA_EXTENSIONS", "SPLIT_ALIASES", "_load_files", "_load_raw"],
    columns: [
        "_CLASS_ID",
        "_check_label_kinds",
        "_generic_names",
        "_label_names",
        "_names_from_column",
        "_texts",
        "_texts_and_labels",
        "_values",
    ],
    task_data: ["TaskData", "load_task_data", "load_text_data", "load_transfer_texts", "logger", "stratified_split"],
}


def test_data_names_stay_importable_from_hf_bort_data():
    for module, names in MOVED.items():
        for name in names:
            assert getattr(hf_bort.data, name) is getattr(module, name), name
    from hf_bort.compress import TaskData, load_task_data

    assert (TaskData, load_task_data) == (task_data.TaskData, task_data.load_task_data)


def test_the_loaders_log_under_hf_bort_data():
    """A logging setting on `hf_bort.data` (as before the split) still reaches every loader's warnings."""
    assert task_data.logger.name.startswith("hf_bort.data.") and sources.logger.name.startswith("hf_bort.data.")


def test_every_data_module_is_under_500_lines():
    folder = Path(hf_bort.data.__file__).parent
    sizes = {path.name: len(path.read_text().splitlines()) for path in folder.glob("*.py")}
    assert {"__init__.py", "sources.py", "columns.py", "task_data.py"} <= set(sizes)
    assert {name: size for name, size in sizes.items() if size > 500} == {}
