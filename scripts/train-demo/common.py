"""Shared pieces of the demo-model training: vocabulary, tokenizer files, model config, batches, exact-match."""
import json
import os
import random

import torch

from tasks import TASKS, sample

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
SPECIALS = ["<pad>", "<s>", "</s>", "<unk>"]
CHARS = [chr(c) for c in range(32, 127)] + ["\n"]
VOCAB_SIZE = 128  # 4 specials + 96 characters + reserved ids (never produced by the tokenizer)
CHAR_TO_ID = {c: len(SPECIALS) + i for i, c in enumerate(CHARS)}
MAX_POSITIONS = 128
MAX_SEQ_TOKENS = 64  # every training sequence fits in this

MODEL_CONFIG = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=256,
    intermediate_size=512,
    num_hidden_layers=4,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=32,
    max_position_embeddings=MAX_POSITIONS,
    rms_norm_eps=1e-5,
    rope_theta=10000.0,
    tie_word_embeddings=False,
    attention_bias=False,
    mlp_bias=False,
    hidden_act="silu",
    bos_token_id=BOS_ID,
    eos_token_id=EOS_ID,
    pad_token_id=PAD_ID,
)

# A user message that already ends in '=' (the prompt format itself, e.g. "12+30=") gets no second '='.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ message['content'] }}"
    "{% if not message['content'].endswith('=') %}={% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def encode(text: str) -> list[int]:
    """Character ids, the same as tokenizer.json's encoding without the BOS its post-processor adds."""
    return [CHAR_TO_ID.get(c, UNK_ID) for c in text]


def decode(ids) -> str:
    inv = {v: k for k, v in CHAR_TO_ID.items()}
    return "".join(inv.get(int(i), "") for i in ids)


def write_tokenizer(out_dir: str) -> None:
    from tokenizers import Tokenizer, decoders, models, processors

    vocab = {t: i for i, t in enumerate(SPECIALS)}
    vocab.update(CHAR_TO_ID)
    for i in range(len(vocab), VOCAB_SIZE):
        vocab[f"<reserved_{i}>"] = i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>", fuse_unk=False, byte_fallback=False))
    tok.add_special_tokens(SPECIALS)
    tok.decoder = decoders.Fuse()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", BOS_ID)]
    )
    tok.save(os.path.join(out_dir, "tokenizer.json"))
    for s in ["hello world=", "12+345=", "Ab(9)!"]:
        assert tok.encode(s).ids == [BOS_ID] + encode(s), s
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": MAX_POSITIONS,
        "chat_template": CHAT_TEMPLATE,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def make_model(seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(LlamaConfig(**MODEL_CONFIG))


def bos_prefix(rng: random.Random) -> list[int]:
    """Mostly one BOS; a few sequences with none or two, so that either way of tokenising still works."""
    u = rng.random()
    return [] if u < 0.05 else [BOS_ID, BOS_ID] if u < 0.10 else [BOS_ID]


def build_batch(pairs, bos_lists=None, device="cpu"):
    """pairs: [(prompt, answer)]. Returns input_ids [B, T] (right-padded) and labels [B, T] where labels[b, t]
    is the id expected at position t+1 (-100 where no loss: prompt positions and padding)."""
    rows, targets = [], []
    for i, (prompt, answer) in enumerate(pairs):
        head = bos_lists[i] if bos_lists is not None else [BOS_ID]
        p = head + encode(prompt)
        a = encode(answer) + [EOS_ID]
        seq = p + a
        rows.append(seq)
        tgt = [-100] * (len(p) - 1) + a + [-100]
        targets.append(tgt)
    width = max(len(r) for r in rows)
    assert width <= MAX_SEQ_TOKENS + 2, width
    ids = torch.tensor([r + [PAD_ID] * (width - len(r)) for r in rows], dtype=torch.long)
    labels = torch.tensor([t + [-100] * (width - len(t)) for t in targets], dtype=torch.long)
    return ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def training_batch(rng: random.Random, tasks, batch_size: int, device: str, prefixed: bool = False):
    pairs = [sample(tasks[rng.randint(0, len(tasks) - 1)], rng, prefixed) for _ in range(batch_size)]
    return build_batch(pairs, [bos_prefix(rng) for _ in pairs], device)


def loss_and_exact(model, ids, labels, **kwargs):
    """Cross-entropy over answer tokens, and per-row exact match under teacher forcing. A row whose every answer
    position (EOS included) has the right argmax is exactly what greedy decoding produces, so this equals greedy
    exact-match accuracy."""
    logits = model(input_ids=ids, **kwargs).logits.float()
    mask = labels != -100
    loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    right = (logits.argmax(-1) == labels) | ~mask
    return loss, right.all(dim=1)


def eval_pairs(task: str, n: int, seed: int, prefixed: bool = False):
    from tasks import Mulberry32

    rng = Mulberry32(seed)
    return [sample(task, rng, prefixed) for _ in range(n)]


def lr_at(fraction: float, peak: float, warmup_fraction: float = 0.03) -> float:
    import math

    if fraction < warmup_fraction:
        return peak * fraction / warmup_fraction
    f = min(1.0, (fraction - warmup_fraction) / (1 - warmup_fraction))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * f)))


def device_name() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


ALL_TASK_NAMES = list(TASKS)
