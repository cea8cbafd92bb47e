"""The tiny encoder shapes shared by the tests: hidden 32, 2 layers, 4 heads; and a heterogeneous Bort one."""

TINY_SHAPE = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)

# A Bort shape with per-layer widths: heads [4, 2] x 8 (inner width 32, then 16), FFN [37, 16], no token types.
HETERO_SHAPE = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=[4, 2],
    attention_head_size=8,
    intermediate_size=[37, 16],
    max_position_embeddings=64,
    type_vocab_size=0,
)
