"""Model families provided by hf_bort."""
