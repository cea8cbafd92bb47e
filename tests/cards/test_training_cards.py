"""Cards of trained models: extracted (`hf-bort extract`), distilled (`hf-bort distill`) and Agora-trained."""

from __future__ import annotations

import argparse
import random
import re

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from transformers import BertConfig, BertForSequenceClassification, BertModel

from tiny_shapes import TINY_SHAPE
from tiny_tokenizers import WORDS, bert_tokenizer


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 8))) for _ in range(n)]


def test_extract_and_distill_commands_write_cards(tmp_path):
    from hf_bort.ose.cli import add_commands

    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    torch.manual_seed(0)
    source = tmp_path / "source"
    BertModel(BertConfig(**TINY_SHAPE)).save_pretrained(source)
    bert_tokenizer(tmp_path / "tok").save_pretrained(source)
    (tmp_path / "texts.txt").write_text("\n".join(_texts(40, 0)))
    common = [str(source), "--texts", str(tmp_path / "texts.txt"), "--output-dir", str(tmp_path / "run")]
    grid = ["--layers", "1", "--heads", "2", "--hidden", "32", "--intermediate", "8", "--epsilon", "1.0"]
    args = parser.parse_args(["extract", *common, *grid, "--candidate", "D1-A2-H32-I8-d8", str(tmp_path / "student")])
    assert args.func(args) == 0
    card = ModelCard.load(tmp_path / "student" / "README.md")
    assert {"hf_bort", "bort", "extracted", "bert"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "feature-extraction"
    kept = re.search(r"\| Layers kept \(source indices\) \| (\d) \|", card.text).group(1)
    assert f"| 0 | {kept} | 2 | 8 | 8 | 32 |" in card.text  # layer 0 = the kept source layer, 2 heads, FFN 8
    assert "not trained after extraction" in card.text.lower() and "`source`" in card.text

    args = parser.parse_args(
        ["distill", str(tmp_path / "student"), str(source), str(tmp_path / "distilled")]
        + ["--texts", str(tmp_path / "texts.txt"), "--max-steps", "2", "--batch-size", "4"]
    )
    assert args.func(args) == 0
    card = ModelCard.load(tmp_path / "distilled" / "README.md")
    assert {"hf_bort", "bort", "distilled", "bert"} <= set(card.data.tags)
    assert "| Max steps | 2 |" in card.text and "| Objective | hidden |" in card.text
    assert "| Training steps | 2 |" in card.text


def test_agora_trainer_writes_its_card_on_save(tmp_path):
    from hf_bort.agora import AgoraConfig, AgoraTrainer

    tokenizer = bert_tokenizer(tmp_path / "tok")

    def label(text):
        return int(any(word in {"good", "great", "fun"} for word in text.split()))

    def dataset(n, seed):
        texts = _texts(n, seed)
        data = Dataset.from_dict({"text": texts, "label": [label(t) for t in texts]})
        return data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=16), batched=True)

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(**TINY_SHAPE, num_labels=2))
    args = AgoraConfig(
        str(tmp_path / "agora-out"),
        agora_rounds=2,
        agora_samples_per_error=2,
        agora_max_errors=4,
        per_device_train_batch_size=8,
        num_train_epochs=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        eval_strategy="epoch",
        hub_model_id="me/agora-tiny",
    )

    def metrics(prediction):
        return {"accuracy": float((prediction.predictions.argmax(-1) == prediction.label_ids).mean())}

    trainer = AgoraTrainer(
        model=model,
        args=args,
        train_dataset=dataset(16, 1),
        eval_dataset=dataset(16, 2),
        labeller=lambda points: [label(p["text"]) for p in points],
        processing_class=tokenizer,
        compute_metrics=metrics,
    )
    trainer.train()
    trainer.save_model()
    card = ModelCard.load(tmp_path / "agora-out" / "README.md")
    assert {"hf_bort", "agora", "bert"} <= set(card.data.tags) and "bort" not in card.data.tags  # a BERT student
    assert card.data.model_name == "agora-tiny" and 'from_pretrained("me/agora-tiny")' in card.text
    last = [e for e in trainer.state.log_history if "eval_accuracy" in e][-1]["eval_accuracy"]
    (result,) = card.data.eval_results
    assert result.metric_type == "accuracy" and result.metric_value == pytest.approx(last)
    assert "### Agora rounds" in card.text and "| Agora rounds | 2 |" in card.text
    assert len([line for line in card.text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]) == 2
    assert "Agora fine-tuning" in card.text and "trust_remote_code" not in card.text  # no Bort code to run
