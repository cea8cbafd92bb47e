"""Model families provided by hf_bort."""

# The encoder families `convert`, `extract`, `search` and `compress` take (one list for --help, README and docs;
# the model types are `SUPPORTED_MODEL_TYPES` in bort/convert.py).
SUPPORTED_FAMILIES = "BERT, RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, MPNet, DeBERTa-v2/v3, ModernBERT and Bort"
