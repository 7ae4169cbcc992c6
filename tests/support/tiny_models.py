"""Tiny random models with local tokenizers, saved to folders.

Tests load them back through ``from_pretrained(path)``, the same call a hub id takes,
so the loading code under test is the real one. Shapes are small but not degenerate:
several layers, several heads, head_dim > 1, and for Llama grouped-query attention.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AutoModel,
    BertConfig,
    BertTokenizerFast,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

WORDS = (
    "the a an movie film was is great terrible good bad not very fun boring plot actor story "
    "what who where when why how question answer context paris france capital city river "
    "i you he she it we they love hate like this that and or but with of in on to for"
).split()

CORPUS = [
    "the movie was great and the actor was very good",
    "a terrible film with a boring plot",
    "what is the capital of france ? paris is the capital",
    "i love this story but the ending was bad",
    "they like the river in the city",
] * 20


def bert_tokenizer(path: Path) -> BertTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = [chr(c) for c in range(33, 127)]
    vocab = specials + WORDS + chars + [f"##{c}" for c in chars]
    path.mkdir(parents=True, exist_ok=True)
    vocab_file = path / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    return BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True)  # transformers 5: `vocab`, not `vocab_file`


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    from tokenizers import decoders

    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<pad>",
    )


def save_tiny_bert(path: Path, **overrides: int) -> Path:
    tokenizer = bert_tokenizer(path)
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        type_vocab_size=2,
        num_labels=2,
    )
    cfg.update(overrides)
    model = AutoModel.from_config(BertConfig(**cfg))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_gpt2(path: Path, **overrides: int) -> Path:
    tokenizer = bpe_tokenizer()
    cfg = dict(vocab_size=len(tokenizer), n_embd=32, n_layer=3, n_head=4, n_inner=64, n_positions=128)
    cfg.update(overrides)
    config = GPT2Config(
        **cfg, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    from transformers import GPT2LMHeadModel

    GPT2LMHeadModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_llama(path: Path, **overrides: int) -> Path:
    tokenizer = bpe_tokenizer()
    cfg = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    cfg.update(overrides)
    config = LlamaConfig(
        **cfg, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    from transformers import LlamaForCausalLM

    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_roberta(path: Path) -> Path:
    """RoBERTa: BERT's layout, BPE tokenizer, position ids offset by padding_idx."""
    from transformers import RobertaConfig

    tokenizer = bpe_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id, num_labels=2,
    )
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_distilbert(path: Path) -> Path:
    from transformers import DistilBertConfig

    tokenizer = bert_tokenizer(path)
    config = DistilBertConfig(
        vocab_size=len(tokenizer), dim=32, n_layers=3, n_heads=4, hidden_dim=64, max_position_embeddings=128,
    )
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_opt(path: Path) -> Path:
    from transformers import OPTConfig, OPTForCausalLM

    tokenizer = bpe_tokenizer()
    config = OPTConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=3, num_attention_heads=4, ffn_dim=64,
        max_position_embeddings=128, word_embed_proj_dim=32, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    OPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_bert_mlm(path: Path) -> Path:
    """A tiny BERT saved with its MLM head (``BertForMaskedLM``), as bert-base-uncased ships."""
    from transformers import BertForMaskedLM

    tokenizer = bert_tokenizer(path)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def save_tiny_roberta_mlm(path: Path) -> Path:
    """A tiny RoBERTa saved with its MLM head (``RobertaForMaskedLM``), as roberta-base ships."""
    from transformers import RobertaConfig, RobertaForMaskedLM

    tokenizer = bpe_tokenizer()
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=130, pad_token_id=tokenizer.pad_token_id,
    )
    RobertaForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
