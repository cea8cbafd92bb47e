from __future__ import annotations

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
)

from hf_bort import (
    BortConfig,
    BortForMaskedLM,
    BortForMultipleChoice,
    BortForQuestionAnswering,
    BortForSequenceClassification,
    BortForTokenClassification,
    BortModel,
)


def _bert_like_bort(bert_config: BertConfig) -> BortConfig:
    return BortConfig(
        vocab_size=bert_config.vocab_size,
        hidden_size=bert_config.hidden_size,
        num_hidden_layers=bert_config.num_hidden_layers,
        num_attention_heads=bert_config.num_attention_heads,
        intermediate_size=bert_config.intermediate_size,
        max_position_embeddings=bert_config.max_position_embeddings,
        type_vocab_size=bert_config.type_vocab_size,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        pad_token_id=bert_config.pad_token_id,
        num_labels=bert_config.num_labels,
    )


@pytest.mark.parametrize(
    ("bert_class", "bort_class", "field"),
    [
        (BertModel, BortModel, "last_hidden_state"),
        (BertForMaskedLM, BortForMaskedLM, "logits"),
        (BertForSequenceClassification, BortForSequenceClassification, "logits"),
    ],
)
def test_uniform_bort_with_bert_weights_equals_bert(tiny_kwargs, batch, bert_class, bort_class, field):
    torch.manual_seed(0)
    bert_config = BertConfig(**tiny_kwargs, num_labels=3)
    bert = bert_class(bert_config).eval()
    bort = bort_class(_bert_like_bort(bert_config)).eval()
    # The state dict loads as is: identical parameter names, only the base prefix differs.
    state = {k.replace("bert.", "bort.", 1): v for k, v in bert.state_dict().items() if not k.endswith("_ids")}
    missing, unexpected = bort.load_state_dict(state, strict=False)
    assert not unexpected
    assert set(missing) <= {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    token_type_ids = torch.zeros_like(batch["input_ids"])
    token_type_ids[:, 4:] = 1
    with torch.no_grad():
        expected = getattr(bert(**batch, token_type_ids=token_type_ids), field)
        actual = getattr(bort(**batch, token_type_ids=token_type_ids), field)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
    if bort_class is BortModel:
        torch.testing.assert_close(bort(**batch).pooler_output, bert(**batch).pooler_output, atol=1e-5, rtol=1e-5)


def _heterogeneous_config(**overrides) -> BortConfig:
    kwargs = dict(
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=3,
        num_attention_heads=[4, 1, 3],
        attention_head_size=5,
        intermediate_size=[40, 7, 16],
        max_position_embeddings=32,
        type_vocab_size=0,
        num_labels=3,
    )
    kwargs.update(overrides)
    return BortConfig(**kwargs)


@pytest.mark.parametrize(
    "model_class",
    [
        BortModel,
        BortForMaskedLM,
        BortForSequenceClassification,
        BortForTokenClassification,
        BortForQuestionAnswering,
    ],
)
def test_heterogeneous_shapes_forward_backward_and_reload(tmp_path, batch, model_class):
    torch.manual_seed(0)
    model = model_class(_heterogeneous_config(num_labels=2 if model_class is BortForQuestionAnswering else 3))
    attention = model.base_model.encoder.layer[1].attention.self
    assert attention.query.weight.shape == (5, 24)  # one head of size 5 in a 24-wide model
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    loss = sum(value.pow(2).mean() for value in out.values() if isinstance(value, torch.Tensor))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert len(out.hidden_states) == 4 and [a.shape[1] for a in out.attentions] == [4, 1, 3]

    model.eval()
    model.save_pretrained(tmp_path)
    reloaded = model_class.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        for a, b in zip(model(**batch).to_tuple(), reloaded(**batch).to_tuple(), strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_multiple_choice_shapes_and_loss():
    torch.manual_seed(0)
    model = BortForMultipleChoice(_heterogeneous_config())
    ids = torch.randint(3, 99, (2, 4, 7))
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 3]))
    assert out.logits.shape == (2, 4)
    assert out.loss.item() > 0


def test_sdpa_and_explicit_attention_agree(batch):
    torch.manual_seed(0)
    model = BortModel(_heterogeneous_config()).eval()
    with torch.no_grad():
        fast = model(**batch).last_hidden_state
        explicit = model(**batch, output_attentions=True)
    torch.testing.assert_close(fast, explicit.last_hidden_state, atol=1e-5, rtol=1e-5)
    probs = explicit.attentions[0]
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(probs.sum(-1)))
    assert probs[1, :, :, 6:].abs().max() == 0  # padding keys get no attention


def test_gradient_checkpointing_gives_same_gradients(batch):
    torch.manual_seed(0)
    plain = BortForSequenceClassification(
        _heterogeneous_config(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    )
    checkpointed = BortForSequenceClassification(plain.config)
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    assert checkpointed.bort.encoder.layer[0].gradient_checkpointing
    labels = torch.tensor([0, 2])
    for model in (plain, checkpointed):
        model.train()
        model(**batch, labels=labels).loss.backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5, msg=name)


def test_inputs_embeds_equals_input_ids(batch):
    torch.manual_seed(0)
    model = BortModel(_heterogeneous_config(position_embedding_type="roberta", pad_token_id=1)).eval()
    ids = batch["input_ids"][:1, :6]  # no padding: RoBERTa positions then equal the inputs_embeds ones
    with torch.no_grad():
        a = model(input_ids=ids).last_hidden_state
        b = model(inputs_embeds=model.embeddings.word_embeddings(ids)).last_hidden_state
    torch.testing.assert_close(a, b)


def test_token_types_rejected_without_token_type_embedding(batch):
    model = BortModel(_heterogeneous_config(type_vocab_size=0))
    with pytest.raises(ValueError, match="type_vocab_size=0"):
        model(**batch, token_type_ids=torch.ones_like(batch["input_ids"]))
    model(**batch, token_type_ids=torch.zeros_like(batch["input_ids"]))  # all-zero types are fine


def test_masked_lm_decoder_is_tied_and_survives_reload(tmp_path):
    model = BortForMaskedLM(_heterogeneous_config())
    assert model.cls.predictions.decoder.weight.data_ptr() == model.bort.embeddings.word_embeddings.weight.data_ptr()
    model.save_pretrained(tmp_path)
    reloaded = BortForMaskedLM.from_pretrained(tmp_path)
    decoder, embeddings = reloaded.cls.predictions.decoder, reloaded.bort.embeddings.word_embeddings
    assert decoder.weight.data_ptr() == embeddings.weight.data_ptr()
    torch.testing.assert_close(decoder.weight, model.cls.predictions.decoder.weight)
    torch.testing.assert_close(reloaded.cls.predictions.bias, model.cls.predictions.bias)


@pytest.mark.parametrize(
    ("auto_class", "model_class"),
    [
        (AutoModel, BortModel),
        (AutoModelForMaskedLM, BortForMaskedLM),
        (AutoModelForSequenceClassification, BortForSequenceClassification),
        (AutoModelForTokenClassification, BortForTokenClassification),
        (AutoModelForQuestionAnswering, BortForQuestionAnswering),
        (AutoModelForMultipleChoice, BortForMultipleChoice),
    ],
)
def test_auto_classes_round_trip(tmp_path, auto_class, model_class):
    config = _heterogeneous_config(num_labels=2)
    model = auto_class.from_config(config)
    assert type(model) is model_class
    model.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is BortConfig
    reloaded = auto_class.from_pretrained(tmp_path)
    assert type(reloaded) is model_class
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)


def test_missing_tensors_warn_like_transformers(tmp_path):
    from safetensors.torch import load_file, save_file
    from transformers.testing_utils import CaptureLogger
    from transformers.utils import logging

    BortModel(_heterogeneous_config()).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["encoder.layer.1.intermediate.dense.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    logger = logging.get_logger("transformers.modeling_utils")
    with CaptureLogger(logger) as captured:
        BortModel.from_pretrained(tmp_path)
    assert "encoder.layer.1.intermediate.dense.weight" in captured.out


@pytest.mark.parametrize(("position_type", "limit"), [("absolute", 32), ("roberta", 30)])
def test_too_long_input_names_max_position_embeddings(position_type, limit):
    model = BortModel(_heterogeneous_config(position_embedding_type=position_type, pad_token_id=1))
    model(torch.full((1, limit), 5))
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.full((1, limit + 1), 5))


def test_resize_token_embeddings_keeps_decoder_tied():
    model = BortForMaskedLM(_heterogeneous_config())
    model.resize_token_embeddings(120)
    predictions = model.cls.predictions
    assert model(torch.tensor([[0, 110, 3]])).logits.shape == (1, 3, 120)
    assert predictions.decoder.weight.data_ptr() == model.bort.embeddings.word_embeddings.weight.data_ptr()
    assert predictions.bias.shape == (120,) and predictions.decoder.bias is predictions.bias


@pytest.mark.parametrize("loader", [BortForMaskedLM, AutoModelForMaskedLM])
def test_masked_lm_nonzero_bias_survives_reload(tmp_path, batch, loader):
    # A zero bias cannot tell a reloaded bias from a freshly initialised one: give every token its own bias.
    torch.manual_seed(0)
    model = BortForMaskedLM(_heterogeneous_config()).eval()
    with torch.no_grad():
        model.cls.predictions.bias.copy_(torch.linspace(-3.0, 3.0, model.config.vocab_size))
    model.save_pretrained(tmp_path)
    reloaded = loader.from_pretrained(tmp_path).eval()
    predictions = reloaded.cls.predictions
    assert predictions.decoder.bias is predictions.bias
    torch.testing.assert_close(predictions.decoder.bias, model.cls.predictions.bias)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, model(**batch).logits)


def _spy_attention(monkeypatch) -> dict[str, int]:
    """Counts the calls of Bort's eager attention function and of torch's SDPA kernel."""
    from hf_bort.models.bort import modeling_bort_attention  # where `BortSelfAttention` looks the function up

    calls = {"eager": 0, "sdpa": 0}
    eager, sdpa = modeling_bort_attention.eager_attention_forward, torch.nn.functional.scaled_dot_product_attention

    def counted(name, function):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(modeling_bort_attention, "eager_attention_forward", counted("eager", eager))
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counted("sdpa", sdpa))
    return calls


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_attn_implementation_picks_the_attention_function(tmp_path, batch, monkeypatch, implementation):
    torch.manual_seed(0)
    BortModel(_heterogeneous_config()).save_pretrained(tmp_path)
    model = BortModel.from_pretrained(tmp_path, attn_implementation=implementation).eval()
    assert model.config._attn_implementation == implementation
    calls = _spy_attention(monkeypatch)
    with torch.no_grad():
        model(**batch)
    other = "sdpa" if implementation == "eager" else "eager"
    assert calls == {implementation: 3, other: 0}  # one call per layer, none of the other function


def test_eager_and_sdpa_give_equal_outputs_and_can_be_switched(batch, monkeypatch):
    torch.manual_seed(0)
    model = BortForSequenceClassification(_heterogeneous_config()).eval()
    assert model.config._attn_implementation == "sdpa"  # the default
    with torch.no_grad():
        sdpa = model(**batch, output_hidden_states=True)
        model.set_attn_implementation("eager")
        calls = _spy_attention(monkeypatch)
        eager = model(**batch, output_hidden_states=True)
    assert calls == {"eager": 3, "sdpa": 0}
    torch.testing.assert_close(eager.logits, sdpa.logits, atol=1e-5, rtol=1e-5)
    for a, b in zip(eager.hidden_states, sdpa.hidden_states, strict=True):
        torch.testing.assert_close(a[batch["attention_mask"].bool()], b[batch["attention_mask"].bool()])


def test_eager_attention_returns_the_weights_and_sdpa_falls_back_to_it_for_them(batch, monkeypatch):
    torch.manual_seed(0)
    model = BortModel._from_config(_heterogeneous_config(), attn_implementation="eager").eval()
    calls = _spy_attention(monkeypatch)
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
        model.set_attn_implementation("sdpa")
        again = model(**batch, output_attentions=True)
    assert calls == {"eager": 6, "sdpa": 0}
    assert [a.shape[1] for a in out.attentions] == [4, 1, 3]
    for a, b in zip(out.attentions, again.attentions, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("family", ["mpnet", "deberta-v3", "modernbert"])
def test_eager_and_sdpa_agree_with_relative_bias_disentangled_and_rotary_attention(family):
    from hf_bort import convert_to_bort
    from tiny_families import make_source, padded_batch

    bort = convert_to_bort(make_source(family, "Model")).eval()
    inputs = padded_batch()
    valid = inputs["attention_mask"].bool()
    with torch.no_grad():
        bort.set_attn_implementation("sdpa")
        sdpa = bort(**inputs).last_hidden_state
        bort.set_attn_implementation("eager")
        eager = bort(**inputs).last_hidden_state
    torch.testing.assert_close(eager[valid], sdpa[valid], atol=1e-5, rtol=1e-5)
