from __future__ import annotations

import pytest
import torch
import transformers
from transformers import AutoTokenizer, BertConfig, ConvBertConfig, ConvBertModel, ElectraConfig, RobertaConfig

from hf_bort import (
    BortForMaskedLM,
    BortForMultipleChoice,
    BortForSequenceClassification,
    BortModel,
    convert_to_bort,
    max_output_difference,
)
from tiny_tokenizers import bert_tokenizer, roberta_tokenizer

COMMON = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
    num_labels=3,
)
CONFIGS = {
    "bert": lambda: BertConfig(**COMMON, max_position_embeddings=64),
    "roberta": lambda: RobertaConfig(**COMMON, max_position_embeddings=66, pad_token_id=1),
    "xlm-roberta": lambda: transformers.XLMRobertaConfig(**COMMON, max_position_embeddings=66, pad_token_id=1),
    "camembert": lambda: transformers.CamembertConfig(**COMMON, max_position_embeddings=66, pad_token_id=1),
    "electra": lambda: ElectraConfig(**COMMON, embedding_size=16, max_position_embeddings=64),
}
PREFIX = {
    "bert": "Bert",
    "roberta": "Roberta",
    "xlm-roberta": "XLMRoberta",
    "camembert": "Camembert",
    "electra": "Electra",
}
CASES = [
    (family, head)
    for family in CONFIGS
    for head in ("Model", "ForMaskedLM", "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering")
] + [
    ("bert", "ForMultipleChoice"),
    ("roberta", "ForMultipleChoice"),
    ("bert", "ForPreTraining"),
    ("electra", "ForPreTraining"),
]


def _inputs(batch, head):
    inputs = dict(batch)
    if head == "ForMultipleChoice":
        inputs = {key: value.unsqueeze(1).expand(-1, 3, -1).contiguous() for key, value in inputs.items()}
    return inputs


@pytest.mark.parametrize(("family", "head"), CASES)
def test_conversion_keeps_outputs(batch, family, head):
    torch.manual_seed(0)
    config = CONFIGS[family]()
    if head == "ForQuestionAnswering":
        config.num_labels = 2
    source = getattr(transformers, PREFIX[family] + head)(config).eval()
    bort = convert_to_bort(source)
    assert bort.config.model_type == "bort"
    difference = max_output_difference(source, bort, _inputs(batch, head))
    assert difference < 1e-5
    if head == "ForPreTraining":  # BERT keeps its MLM head, the ELECTRA discriminator keeps its encoder
        assert isinstance(bort, BortModel if family == "electra" else BortForMaskedLM)
        reference = source(**batch).prediction_logits if family == "bert" else None
        if reference is not None:
            torch.testing.assert_close(bort(**batch).logits, reference, atol=1e-5, rtol=1e-5)


def test_conversion_is_not_vacuous(batch):
    """The comparison must see a difference when the weights differ."""
    torch.manual_seed(0)
    source = transformers.BertModel(CONFIGS["bert"]()).eval()
    bort = convert_to_bort(source)
    with torch.no_grad():
        bort.encoder.layer[0].output.dense.weight.add_(0.1 * torch.randn(32, 37))
    assert max_output_difference(source, bort, batch) > 1e-3


def test_electra_classifier_uses_gelu_pooler(batch):
    source = transformers.ElectraForSequenceClassification(CONFIGS["electra"]()).eval()
    bort = convert_to_bort(source)
    assert isinstance(bort, BortForSequenceClassification)
    assert bort.config.pooler_hidden_act == "gelu" and bort.config.embedding_size == 16


def test_bert_multiple_choice_class():
    source = transformers.BertForMultipleChoice(CONFIGS["bert"]())
    assert isinstance(convert_to_bort(source), BortForMultipleChoice)


def test_convert_from_path_saves_tokenizer_and_reloads(tmp_path, batch):
    torch.manual_seed(0)
    source = transformers.BertForSequenceClassification(CONFIGS["bert"]()).eval()
    source.save_pretrained(tmp_path / "src")
    bert_tokenizer(tmp_path / "src").save_pretrained(tmp_path / "src")
    convert_to_bort(tmp_path / "src", tmp_path / "dst")
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "dst")
    assert isinstance(reloaded, BortForSequenceClassification)
    assert max_output_difference(source, reloaded, batch) < 1e-5
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "dst")
    assert tokenizer("the movie").input_ids == [2, 5, 7, 3]


def test_amazon_bort_layout(tmp_path):
    """model_type 'bert', width 1024-style layout with one token type, RoBERTa's tokenizer and pad id."""
    torch.manual_seed(0)
    config = BertConfig(
        **{**COMMON, "hidden_size": 64, "intermediate_size": 24, "num_attention_heads": 8},
        max_position_embeddings=512,
        type_vocab_size=1,
        pad_token_id=1,
        layer_norm_eps=1e-5,
    )
    source = transformers.BertForMaskedLM(config).eval()
    source.save_pretrained(tmp_path / "bort-like")
    tokenizer = roberta_tokenizer(tmp_path / "bort-like")
    tokenizer.save_pretrained(tmp_path / "bort-like")
    bort = convert_to_bort(tmp_path / "bort-like", tmp_path / "out")
    assert isinstance(bort, BortForMaskedLM)
    assert bort.config.position_embedding_type == "absolute" and bort.config.type_vocab_size == 1
    inputs = tokenizer(["the movie was good", "bad"], padding=True, return_tensors="pt")
    assert max_output_difference(source, bort, dict(inputs)) < 1e-5
    assert type(AutoTokenizer.from_pretrained(tmp_path / "out")).__name__.startswith("Roberta")


def test_unsupported_model_type_lists_supported(tmp_path):
    tiny = ConvBertConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37
    )
    supported = (
        "Supported model types: bert, roberta, xlm-roberta, camembert, electra, distilbert, mpnet, deberta-v2, "
        "modernbert, bort"
    )
    with pytest.raises(ValueError, match=supported):
        convert_to_bort(ConvBertModel(tiny))
    ConvBertModel(tiny).save_pretrained(tmp_path / "convbert")
    with pytest.raises(ValueError, match="'convbert'"):
        convert_to_bort(tmp_path / "convbert")


def test_unsupported_inputs():
    with pytest.raises(TypeError, match="model_or_path"):
        convert_to_bort(42)
    with pytest.raises(ValueError, match="multiple-choice"):
        convert_to_bort(transformers.ElectraForMultipleChoice(CONFIGS["electra"]()))
    relative = BertConfig(**COMMON, position_embedding_type="relative_key")
    with pytest.raises(ValueError, match="position_embedding_type"):
        convert_to_bort(transformers.BertModel(relative))
