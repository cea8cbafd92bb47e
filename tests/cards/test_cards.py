"""Model cards: metadata that round-trips through `huggingface_hub.ModelCard.load`, numbers from the run's JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import BertConfig, BertModel

from hf_bort.cards import BortCardData, EvalRecord, compressed_card, save_card, write_compressed_card
from hf_bort.cards.data import TEMPLATE_PATH
from tiny_shapes import TINY_SHAPE

REPO = Path(__file__).resolve().parents[2]
REPORT = json.loads((REPO / "benchmarks" / "results" / "compress_rt_seed0.json").read_text())["report"]


def _load(folder: Path) -> ModelCard:
    return ModelCard.load(folder / "README.md")


def test_the_template_ships_inside_the_package_and_model_cards_points_to_it():
    assert TEMPLATE_PATH.is_file() and TEMPLATE_PATH.parent.name == "templates"
    top = REPO / "model_cards" / TEMPLATE_PATH.name
    assert top.resolve() == TEMPLATE_PATH.resolve()  # one template, not two copies


def test_compressed_card_from_the_real_report_round_trips(tmp_path):
    save_card(compressed_card(REPORT, "bort-minilm-rt"), tmp_path)
    card = _load(tmp_path)
    data = card.data
    assert data.library_name == "transformers"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # the packaged MiniLM's Hub id
    assert data.pipeline_tag == "text-classification"
    assert {"hf_bort", "bort", "compressed"} <= set(data.tags)
    assert data.model_name == "bort-minilm-rt"
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    student = REPORT["student"]
    assert results == {
        ("validation", "accuracy"): student["dev"]["accuracy"],
        ("validation", "f1"): student["dev"]["macro_f1"],
        ("test", "accuracy"): student["test"]["accuracy"],
        ("test", "f1"): student["test"]["macro_f1"],
    }
    assert set(data.metrics) == {"accuracy", "f1"}
    text = card.text
    # numbers come from the report
    assert f"{student['parameters']:,}" in text and f"{REPORT['source']['parameters']:,}" in text
    assert f"{REPORT['latency']['onnxruntime_fp32']['student']['p50_ms']:.2f} ms" in text
    assert f"{100 * student['test']['accuracy']:.2f} %" in text
    assert REPORT["machine"]["cpu"] in text
    # chosen shape per layer, the front, the recipe, how to load, citations
    assert "| 5 | 5 | 3 | 32 | 256 | 384 |" in text
    assert f"**{student['shape']}** (chosen)" in text
    assert len([line for line in text.splitlines() if line.startswith("| D")]) == len(REPORT["search"]["front"])
    assert "Task distillation: 0.5·CE + 0.5·T²·KL (T=2.0)" in text
    assert 'from_pretrained("bort-minilm-rt", trust_remote_code=True)' in text
    assert "arXiv:2010.10499" in text and "@software{hf_bort" in text


def test_missing_values_are_left_out_not_invented(tmp_path):
    report = copy.deepcopy(REPORT)
    report["latency"] = {}
    report["student"]["test"] = None
    report["source"]["test"] = None
    report["machine"] = {}
    save_card(compressed_card(report), tmp_path)
    card = _load(tmp_path)
    assert " ms" not in card.text and "Latency" not in card.text and "test accuracy" not in card.text
    assert {r.dataset_split for r in card.data.eval_results} == {"validation"}


def test_an_in_memory_dataset_is_named_by_dataset_name(tmp_path):
    report = copy.deepcopy(REPORT)
    assert report["settings"]["dataset"].startswith("<in-memory")
    (tmp_path / "unnamed").mkdir()
    (tmp_path / "named").mkdir()
    save_card(compressed_card(report), tmp_path / "unnamed")
    assert "an in-memory dataset" in _load(tmp_path / "unnamed").text
    report["settings"]["dataset_name"] = "Rotten Tomatoes polarity (seed-0 split)"
    save_card(compressed_card(report), tmp_path / "named")
    card = _load(tmp_path / "named")
    assert "Rotten Tomatoes polarity (seed-0 split)" in card.text and "an in-memory dataset" not in card.text
    assert not card.data.datasets  # a name the user gave is not claimed as a Hub dataset


def test_card_data_validates_and_tags_onnx():
    with pytest.raises(ValueError, match="`kind` must be one of"):
        BortCardData(kind="magic")
    card = BortCardData(kind="converted", source_family="roberta", onnx_files=["onnx/model.onnx"])
    assert card.all_tags[:3] == ["hf_bort", "bort", "converted"] and {"roberta", "onnx"} <= set(card.all_tags)
    assert card.base_model is None  # no source: no base_model
    card = BortCardData(kind="converted", source="/not/a/hub/id/at/all")
    assert card.base_model is None


def test_eval_records_become_a_model_index(tmp_path):
    card = BortCardData(
        kind="agora",
        model_name="m",
        architecture="BortForSequenceClassification",
        eval_results=[EvalRecord("accuracy", "validation", 0.75, dataset="imdb", name="dev accuracy")],
        datasets=["imdb"],
    )
    save_card(card, tmp_path)
    loaded = _load(tmp_path).data
    assert loaded.datasets == ["imdb"] and loaded.eval_results[0].metric_value == 0.75
    assert loaded.eval_results[0].dataset_type == "imdb" and loaded.eval_results[0].metric_name == "dev accuracy"


def _fake_run(tmp_path, tiny_student, with_onnx: bool) -> Path:
    run = tmp_path / "run"
    tiny_student.save_pretrained(run / "student")
    (run / "search").mkdir(parents=True)
    (run / "search" / "front.png").write_bytes(b"\x89PNG fake")
    if with_onnx:
        (run / "onnx" / "student").mkdir(parents=True)
        (run / "onnx" / "student" / "model.onnx").write_bytes(b"onnx")
        (run / "onnx" / "student" / "config.json").write_text("{}")
    return run


@pytest.fixture
def tiny_student():
    from hf_bort import BortConfig, BortForSequenceClassification

    torch.manual_seed(0)
    config = BortConfig(
        **{**TINY_SHAPE, "num_attention_heads": [4, 2], "intermediate_size": [37, 16], "attention_head_size": 8}
    )
    return BortForSequenceClassification(config)


@pytest.mark.parametrize("with_onnx", [True, False])
def test_the_student_folder_becomes_the_folder_to_publish(tmp_path, tiny_student, with_onnx):
    run = _fake_run(tmp_path, tiny_student, with_onnx)
    report = copy.deepcopy(REPORT)
    report["search"]["plot"] = str(run / "search" / "front.png")
    write_compressed_card(run, report, model_name="my-student")
    student = run / "student"
    assert json.loads((student / "compression_report.json").read_text()) == json.loads(json.dumps(report))
    assert (student / "front.png").read_bytes() == b"\x89PNG fake"
    card = _load(student)
    assert "![Pareto front](front.png)" in card.text
    assert ("onnx" in card.data.tags) == with_onnx
    assert ("ORTModelForSequenceClassification" in card.text) == with_onnx
    if with_onnx:
        assert (student / "onnx" / "model.onnx").is_file() and 'subfolder="onnx"' in card.text
    assert "trust_remote_code=True" in card.text  # the folder ships modeling_bort.py


def test_hf_bort_convert_writes_a_card(tmp_path):
    from hf_bort.cli import main
    from tiny_tokenizers import bert_tokenizer

    torch.manual_seed(0)
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(tmp_path / "bert")
    bert_tokenizer(tmp_path / "bert").save_pretrained(tmp_path / "bert")
    assert main(["convert", str(tmp_path / "bert"), str(tmp_path / "bort")]) == 0
    card = _load(tmp_path / "bort")
    assert {"hf_bort", "bort", "converted", "bert"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "feature-extraction" and card.data.base_model is None  # local source
    assert "Max abs output difference vs source" in card.text and "| 1 | 4 | 8 | 37 | 32 |" in card.text
    assert "AutoModel.from_pretrained" in card.text


def test_onnx_export_writes_a_card(tmp_path, tiny_student):
    pytest.importorskip("optimum.exporters.onnx")
    pytest.importorskip("onnxruntime")
    from hf_bort.exporters import export_onnx

    result = export_onnx(tiny_student.eval(), tmp_path / "bort-onnx", quantize="dynamic-int8")
    card = _load(tmp_path / "bort-onnx")
    assert {"hf_bort", "bort", "onnx"} <= set(card.data.tags) and card.data.pipeline_tag == "text-classification"
    path = (tmp_path / "bort-onnx").as_posix()  # the real folder, not its bare name (issue 22 item 2)
    assert f'ORTModelForSequenceClassification.from_pretrained("{path}")' in card.text
    assert "`model.onnx`" in card.text and "`model_quantized.onnx`" in card.text
    assert f"{result.max_abs_diff:.3g}" in card.text
    # no PyTorch weights, no modeling code in an ONNX folder: remote code only reads the config (issue 22 item 3)
    assert [line for line in card.text.splitlines() if "trust_remote_code=True)" in line] == [
        f'config = AutoConfig.from_pretrained("{path}", trust_remote_code=True)'
    ]


HOSTILE = {
    "dataset": "<img src=x onerror=alert(1)>",
    "label": "# Injected",
    "pipe": "pos|itive",
    "source": "evil`model|x",
    "model": 'student"\n# Injected heading <script>',
}


def _html(text: str) -> str:
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table").render(text)


def test_user_strings_cannot_break_the_card_body(tmp_path):
    """Dataset and label names went into the body raw: an <img onerror> tag, a '# Injected' heading, a '|' cell."""
    from hf_bort.hub import card_for_repo

    report = copy.deepcopy(REPORT)
    report["settings"]["dataset_name"] = HOSTILE["dataset"]
    report["settings"]["model"] = str(tmp_path / HOSTILE["source"])
    report["data"]["label_names"] = [HOSTILE["label"], HOSTILE["pipe"]]
    (tmp_path / "out").mkdir()
    save_card(compressed_card(report, HOSTILE["model"]), tmp_path / "out")
    card = _load(tmp_path / "out")
    assert card.data.model_name == HOSTILE["model"] and card.data.eval_results[0].dataset_name == HOSTILE["dataset"]
    text = card.text
    assert "<img" not in text.replace("\\<img", "") and "<script>" not in text.replace("\\<script\\>", "")
    assert not [line for line in text.splitlines() if "Injected" in line and line.lstrip().startswith("#")][1:]
    assert '# student" \\# Injected heading \\<script\\>' in text.splitlines()  # the name stays in its heading
    assert "\\# Injected, pos\\|itive" in text and "| Data | \\<img src=x onerror=alert(1)\\> |" in text
    assert 'from_pretrained("student\\"\\n# Injected heading \\u003cscript\\u003e"' in text  # a JSON string in code
    pushed = card_for_repo((tmp_path / "out" / "README.md").read_text(), "me/x")
    assert 'from_pretrained("me/x", trust_remote_code=True)' in pushed and "\\u003cscript" not in pushed
    html = _html(text)
    assert "<img" not in html and "<script" not in html and "<h1>Injected" not in html
    assert html.count("<h1>") == 1 and "&lt;img src=x onerror=alert(1)&gt;" in html
    for table in html.split("<table>")[1:]:  # every row keeps its table's columns: a '|' in a name adds no cell
        rows = table.split("</table>")[0].split("<tr>")[1:]
        assert len({row.count("<td") + row.count("<th") for row in rows}) == 1, table


def test_every_builder_escapes_the_source_name(tmp_path):
    from hf_bort.cards.builders import converted_card, distilled_card, extracted_card
    from hf_bort.cards.data import render_card

    torch.manual_seed(0)
    model = BertModel(BertConfig(**TINY_SHAPE))
    source = str(tmp_path / "<b onmouseover=x>src|a")
    for card in (
        converted_card(model, source),
        extracted_card(model, source),
        distilled_card(model, source, settings={"| key": "<i>value</i>"}),
    ):
        text = render_card(card).text
        assert "<b" not in text.replace("\\<b", "") and "<i>" not in text
        assert "\\<b onmouseover=x\\>src\\|a" in text
        html = _html(text)
        assert "<b " not in html and "<i>" not in html and "&lt;b onmouseover=x&gt;src|a" in html
