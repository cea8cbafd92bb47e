from __future__ import annotations

import pytest

import hf_bort.exporters


def test_import_without_optimum_is_fine_and_hint_names_extra(monkeypatch):
    """`import hf_bort.exporters` needs no optimum; a missing optimum raises with the install command."""
    assert "export_onnx" in hf_bort.exporters.__all__
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("optimum") or name == "onnxruntime":
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r'pip install "hf-bort\[onnx\]"'):
        hf_bort.exporters.require_onnx()


def test_bort_onnx_config_attribute_is_lazy():
    import hf_bort.exporters.onnx as onnx_module

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        onnx_module.Nope  # noqa: B018
