#!/usr/bin/env python3
"""Builds tslora's test fixtures: tiny random HF models, PEFT LoRA adapters (valid and invalid) and the
PyTorch + transformers + PEFT reference outputs that the TypeScript and native tests compare against.

Run from the repository root:  nice python3 scripts/make-fixtures.py [model-name ...]
Writes test/fixtures/models/<model>/ and test/fixtures/reference/<model>.json (format: test/fixtures/README.md), or
the same under $TSLORA_FIXTURES_OUT.
Deterministic (fixed seeds). Tests never run Python; they read what this script committed.
"""
import json
import math
import os
import shutil
import sys
import tempfile

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
# TSLORA_FIXTURES_OUT writes elsewhere (test/native/fixture-drift.test.ts regenerates into a temporary directory).
FIXTURES = os.environ.get('TSLORA_FIXTURES_OUT') or os.path.join(ROOT, 'test', 'fixtures')

# ----------------------------------------------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------------------------------------------

TRAINING_TEXT = """
The quick brown fox jumps over the lazy dog. A tiny model learns nothing, but it runs fast.
Serving many adapters at once is the whole point: every request may carry its own LoRA.
Hello world! How are you today? I am fine, thank you. What is the answer? The answer is 42.
def add(a, b):
    return a + b
for i in range(10): print(i)
Adapters, ranks, scaling and batches; tokens stream back one by one to the client.
The cat sat on the mat. The dog ate the bone. She sells sea shells by the sea shore.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 100 1000 3.14 2.71 -1 +1 = < > ( ) [ ] { } " ' ` ~ ! @ # $ % ^ & * _ / \\ |
""" * 3

# Strings whose encode/decode must agree between Python tokenizers and @huggingface/tokenizers in Node.
HARD_STRINGS = [
    'Hello world! How are you today?',
    '  leading spaces and\ttabs\tand\nnewlines\n\n',
    'emoji 🦙🚀 and a family 👨‍👩‍👧',
    '中文字符和日本語のテキスト',
    'العربية نص',
    'café naïve Ŝ ß ẞ',
    'def add(a, b):\n    return a + b',
    '',
]

LLAMA_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

CHATML_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a tiny test model.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _special(content):
    return {'content': content, 'lstrip': False, 'normalized': False, 'rstrip': False, 'single_word': False,
            'special': True}


def _write_tokenizer_config(model_dir, tok, config):
    added = {}
    for token in config['special_tokens']:
        added[str(tok.token_to_id(token))] = _special(token)
    body = {
        'added_tokens_decoder': added,
        'bos_token': config.get('bos_token'),
        'eos_token': config['eos_token'],
        'pad_token': config.get('pad_token'),
        'unk_token': config.get('unk_token'),
        'chat_template': config['chat_template'],
        'clean_up_tokenization_spaces': False,
        'model_max_length': 512,
        'tokenizer_class': 'PreTrainedTokenizerFast',
    }
    if config.get('add_bos_token') is not None:
        body['add_bos_token'] = config['add_bos_token']
    with open(os.path.join(model_dir, 'tokenizer_config.json'), 'w') as f:
        json.dump(body, f, indent=2, ensure_ascii=False)
        f.write('\n')
    with open(os.path.join(model_dir, 'special_tokens_map.json'), 'w') as f:
        json.dump({k: body[k] for k in ('bos_token', 'eos_token', 'pad_token', 'unk_token') if body[k]}, f, indent=2)
        f.write('\n')


def build_byte_fallback_tokenizer(model_dir, vocab_target):
    """Llama-2 style: SentencePiece-like BPE over '▁'-joined words with <0xXX> byte fallback tokens."""
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Sequence([normalizers.Prepend('▁'), normalizers.Replace(' ', '▁')])
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement='▁', prepend_scheme='never', split=True)
    specials = ['<unk>', '<s>', '</s>']
    chat_specials = ['<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>']
    byte_tokens = [f'<0x{i:02X}>' for i in range(256)]
    n_merged = vocab_target - len(specials) - len(byte_tokens) - len(chat_specials)
    trainer = trainers.BpeTrainer(vocab_size=n_merged, show_progress=False, limit_alphabet=80)
    trainer_tok.train_from_iterator(TRAINING_TEXT.split('\n'), trainer)
    trained = json.loads(trainer_tok.to_str())['model']
    vocab = {}
    for token in specials + byte_tokens:
        vocab[token] = len(vocab)
    for token, _ in sorted(trained['vocab'].items(), key=lambda kv: kv[1]):
        if token not in vocab:
            vocab[token] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(' ')) for m in trained['merges']]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token='<unk>', byte_fallback=True, fuse_unk=True))
    tok.normalizer = trainer_tok.normalizer
    tok.pre_tokenizer = trainer_tok.pre_tokenizer
    tok.decoder = decoders.Sequence([decoders.Replace('▁', ' '), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(' ', 1, 0)])
    tok.add_special_tokens(specials + chat_specials)
    tok.post_processor = processors.TemplateProcessing(single='<s> $A', pair='<s> $A <s> $B',
                                                       special_tokens=[('<s>', tok.token_to_id('<s>'))])
    tok.save(os.path.join(model_dir, 'tokenizer.json'))
    _write_tokenizer_config(model_dir, tok, {
        'special_tokens': specials + chat_specials, 'bos_token': '<s>', 'eos_token': '</s>', 'unk_token': '<unk>',
        'chat_template': LLAMA_CHAT_TEMPLATE, 'add_bos_token': True,
    })
    return {
        'vocab_size': tok.get_vocab_size(with_added_tokens=True),
        'bos': tok.token_to_id('<s>'),
        'eos': [tok.token_to_id('</s>'), tok.token_to_id('<|eot_id|>')],
        'pad': None,
        'special_text': '<|start_header_id|>user<|end_header_id|>hi<|eot_id|></s>',
    }


def build_byte_level_tokenizer(model_dir, vocab_target):
    """Qwen2/Qwen3 style: NFC, regex split, byte-level BPE; ChatML specials; no BOS."""
    specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>']
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT_PATTERN), behavior='isolated', invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_target, show_progress=False, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(TRAINING_TEXT.split('\n'), trainer)
    tok.save(os.path.join(model_dir, 'tokenizer.json'))
    _write_tokenizer_config(model_dir, tok, {
        'special_tokens': specials, 'bos_token': None, 'eos_token': '<|im_end|>', 'pad_token': '<|endoftext|>',
        'unk_token': None, 'chat_template': CHATML_TEMPLATE, 'add_bos_token': False,
    })
    return {
        'vocab_size': tok.get_vocab_size(with_added_tokens=True),
        'bos': None,
        'eos': [tok.token_to_id('<|im_end|>'), tok.token_to_id('<|endoftext|>')],
        'pad': tok.token_to_id('<|endoftext|>'),
        'special_text': '<|im_start|>user\nhi<|im_end|><|endoftext|>',
    }


def tokenizer_expectations(model_dir, tok_info):
    tok = Tokenizer.from_file(os.path.join(model_dir, 'tokenizer.json'))
    cases = []
    for text in HARD_STRINGS + [tok_info['special_text']]:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        cases.append({
            'text': text,
            'ids': with_special,
            'idsNoSpecial': without,
            'decoded': tok.decode(with_special, skip_special_tokens=False),
            'decodedSkipSpecial': tok.decode(with_special, skip_special_tokens=True),
        })
    return cases


def chat_template_expectations(model_dir):
    from transformers import AutoTokenizer
    hf_tok = AutoTokenizer.from_pretrained(model_dir)
    conversations = [
        [{'role': 'user', 'content': 'Hello there!'}],
        [{'role': 'system', 'content': 'Be brief.'}, {'role': 'user', 'content': 'What is 2+2?'},
         {'role': 'assistant', 'content': '  4  '}, {'role': 'user', 'content': 'And 3+3? 中文 🦙'}],
    ]
    cases = []
    for messages in conversations:
        for add_generation_prompt in (True, False):
            rendered = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)
            cases.append({'messages': messages, 'addGenerationPrompt': add_generation_prompt, 'rendered': rendered})
    return cases


# ----------------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------------

MODEL_RECIPES = {
    'tiny-llama': {
        'arch': 'LlamaForCausalLM', 'tokenizer': 'byte_fallback', 'vocab_target': 384, 'dtype': torch.bfloat16,
        'seed': 11, 'shard': '40KB', 'legacy_rope_keys': True,
        'config': dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-5,
                       rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.3,
                       rope_scaling={'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                                     'high_freq_factor': 4.0, 'original_max_position_embeddings': 64}),
        'generation': {'do_sample': True, 'temperature': 0.6, 'top_p': 0.9, 'max_new_tokens': 64},
    },
    'tiny-qwen2': {
        'arch': 'Qwen2ForCausalLM', 'tokenizer': 'byte_level', 'vocab_target': 320, 'dtype': torch.float16,
        'seed': 12, 'shard': None, 'legacy_rope_keys': False,
        'config': dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=True, initializer_range=0.3,
                       use_sliding_window=False),
        'generation': {'do_sample': True, 'temperature': 0.7, 'top_p': 0.8, 'top_k': 20,
                       'repetition_penalty': 1.05},
    },
    'tiny-qwen3': {
        'arch': 'Qwen3ForCausalLM', 'tokenizer': 'byte_level', 'vocab_target': 320, 'dtype': torch.bfloat16,
        'seed': 13, 'shard': None, 'legacy_rope_keys': False,
        'config': dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, head_dim=32, max_position_embeddings=256, rms_norm_eps=1e-6,
                       rope_theta=1000000.0, tie_word_embeddings=False, initializer_range=0.3,
                       attention_bias=False),
        'generation': {'do_sample': True, 'temperature': 0.6, 'top_p': 0.95, 'top_k': 20},
    },
}


def build_model(model_dir, recipe, tok_info):
    import transformers
    torch.manual_seed(recipe['seed'])
    config_cls = getattr(transformers, recipe['arch'].replace('ForCausalLM', 'Config'))
    model_cls = getattr(transformers, recipe['arch'])
    config = config_cls(vocab_size=tok_info['vocab_size'], bos_token_id=tok_info['bos'],
                        eos_token_id=tok_info['eos'][0], pad_token_id=tok_info['pad'], **recipe['config'])
    model = model_cls(config).eval()
    generator = torch.Generator().manual_seed(recipe['seed'] + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name == 'model.norm.weight':
                # A large final norm spreads the logits (std ≈ 7) so greedy top-1/top-2 margins are rarely tiny.
                param.copy_(2.0 + 2.0 * torch.rand(param.shape, generator=generator))
            elif name.endswith('norm.weight'):
                # Non-trivial norm weights (input/post-attention and Qwen3's q/k norms).
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
            elif name.endswith('.bias'):
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    model = model.to(recipe['dtype'])
    save_kwargs = {'max_shard_size': recipe['shard']} if recipe['shard'] else {}
    model.save_pretrained(model_dir, **save_kwargs)
    config_path = os.path.join(model_dir, 'config.json')
    with open(config_path) as f:
        cfg = json.load(f)
    if recipe['legacy_rope_keys'] and 'rope_parameters' in cfg:
        # Real Llama 3.x checkpoints spell RoPE as rope_theta + rope_scaling; transformers 5 writes rope_parameters.
        params = dict(cfg.pop('rope_parameters'))
        cfg['rope_theta'] = params.pop('rope_theta')
        cfg['rope_scaling'] = params
    with open(config_path, 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    generation = {'bos_token_id': tok_info['bos'], 'eos_token_id': tok_info['eos'], **recipe['generation']}
    if tok_info['pad'] is not None:
        generation['pad_token_id'] = tok_info['pad']
    with open(os.path.join(model_dir, 'generation_config.json'), 'w') as f:
        json.dump(generation, f, indent=2)
        f.write('\n')


def load_reference_model(model_dir):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation='eager')
    return model.eval()


# ----------------------------------------------------------------------------------------------------------------
# Adapters
# ----------------------------------------------------------------------------------------------------------------

ALL_SEVEN = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']

# name → LoraConfig kwargs plus: 'gain' (B multiplier so deltas change greedy tokens), 'dtype' of the saved tensors,
# 'named_keys' (save keys as lora_A.default.weight).
ADAPTER_RECIPES = {
    'tiny-llama': {
        'r1-qv': dict(r=1, lora_alpha=2, target_modules=['q_proj', 'v_proj'], gain=3.0),
        'r3-all': dict(r=3, lora_alpha=6, target_modules=ALL_SEVEN, gain=1.5, named_keys=True),
        'r5-gateup': dict(r=5, lora_alpha=5, target_modules=['gate_proj', 'up_proj'], gain=2.0, dtype='bf16'),
        'r8-vdown': dict(r=8, lora_alpha=16, target_modules=['v_proj', 'down_proj'], gain=1.0),
        'r16-o': dict(r=16, lora_alpha=8, target_modules=['o_proj'], gain=2.0, dtype='f16'),
        'r64-rslora': dict(r=64, lora_alpha=16, use_rslora=True, target_modules=ALL_SEVEN, gain=0.6),
        'r4-pattern': dict(r=4, lora_alpha=8, target_modules='all-linear', keep_all_linear=True, gain=1.5,
                           rank_pattern={'q_proj': 2, 'layers.1.mlp.down_proj': 12},
                           alpha_pattern={'down_proj': 3, 'o_proj': 20}),
        'r6-regex-layer1': dict(r=6, lora_alpha=12, target_modules=r'.*\.layers\.1\.self_attn\.(q_proj|k_proj)',
                                gain=2.0),
        'r2-embed-head': dict(r=2, lora_alpha=4, target_modules=['embed_tokens', 'lm_head'], gain=0.2),
    },
    'tiny-qwen2': {
        'r2-qkv': dict(r=2, lora_alpha=4, target_modules=['q_proj', 'k_proj', 'v_proj'], gain=2.0),
        'r7-all': dict(r=7, lora_alpha=14, target_modules=ALL_SEVEN, gain=1.0),
        'r32-mlp': dict(r=32, lora_alpha=16, target_modules=['gate_proj', 'up_proj', 'down_proj'], gain=1.0,
                        dtype='bf16'),
    },
    'tiny-qwen3': {
        'r4-qv': dict(r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], gain=2.0),
        'r6-all': dict(r=6, lora_alpha=12, target_modules='all-linear', gain=1.0, dtype='bf16'),
        'r9-o-rslora': dict(r=9, lora_alpha=6, use_rslora=True, target_modules=['o_proj'], gain=2.0),
    },
}

# Mixed batches per model: adapter name per row ("__base__" = no adapter).
MIXED_BATCHES = {
    'tiny-llama': [['__base__', 'r1-qv', 'r8-vdown'], ['r8-vdown', 'r3-all', '__base__', 'r16-o'],
                   ['r64-rslora', 'r4-pattern', 'r5-gateup', '__base__', 'r2-embed-head', 'r6-regex-layer1']],
    'tiny-qwen2': [['__base__', 'r2-qkv', 'r7-all'], ['r32-mlp', 'r2-qkv', '__base__']],
    'tiny-qwen3': [['__base__', 'r4-qv', 'r6-all'], ['r9-o-rslora', 'r6-all', '__base__']],
}


def _save_adapter_tensors(adapter_dir, dtype, named_keys):
    path = os.path.join(adapter_dir, 'adapter_model.safetensors')
    tensors = load_file(path)
    out = {}
    for key, value in tensors.items():
        if dtype == 'bf16':
            value = value.to(torch.bfloat16)
        elif dtype == 'f16':
            value = value.to(torch.float16)
        if named_keys:
            key = key.replace('.lora_A.weight', '.lora_A.default.weight').replace(
                '.lora_B.weight', '.lora_B.default.weight').replace(
                '.lora_embedding_A', '.lora_embedding_A.default').replace('.lora_embedding_B', '.lora_embedding_B.default')
        out[key] = value.contiguous()
    save_file(out, path, metadata={'format': 'pt'})


def build_adapter(model_dir, name, recipe, seed):
    from peft import LoraConfig, get_peft_model
    recipe = dict(recipe)
    gain = recipe.pop('gain')
    dtype = recipe.pop('dtype', 'f32')
    named_keys = recipe.pop('named_keys', False)
    # PEFT saves 'all-linear' expanded into full module names; keep PEFT's literal spelling when asked, since
    # hand-written and other tools' configs carry it (equivalent: it resolves to the same modules).
    keep_all_linear = recipe.get('target_modules') == 'all-linear' and recipe.pop('keep_all_linear', False)
    recipe.pop('keep_all_linear', None)
    torch.manual_seed(seed)
    base = load_reference_model(model_dir)
    config = LoraConfig(init_lora_weights=False, lora_dropout=0.0, task_type='CAUSAL_LM', **recipe)
    peft_model = get_peft_model(base, config)
    with torch.no_grad():
        for pname, param in peft_model.named_parameters():
            if '.lora_B.' in pname or '.lora_embedding_B.' in pname:
                param.mul_(gain)
            # PEFT's init_lora_weights=False leaves lora_embedding_B at zero-free default; keep as is.
    adapter_dir = os.path.join(model_dir, 'adapters', name)
    peft_model.save_pretrained(adapter_dir, save_embedding_layers=False)
    _save_adapter_tensors(adapter_dir, dtype, named_keys)
    _drop_model_card(adapter_dir)
    changes = {'base_model_name_or_path': os.path.basename(model_dir)}
    with open(os.path.join(adapter_dir, 'adapter_config.json')) as f:
        saved_targets = json.load(f)['target_modules']
    if isinstance(saved_targets, list):
        changes['target_modules'] = sorted(saved_targets)  # PEFT writes a set in arbitrary order
    if keep_all_linear:
        changes['target_modules'] = 'all-linear'
    _edit_config(adapter_dir, **changes)
    return adapter_dir


def _drop_model_card(adapter_dir):
    # PEFT writes a boilerplate model card naming the absolute base-model path; it carries nothing tests need.
    card = os.path.join(adapter_dir, 'README.md')
    if os.path.exists(card):
        os.remove(card)


def _copy_adapter(src, dst):
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def _edit_config(adapter_dir, **changes):
    path = os.path.join(adapter_dir, 'adapter_config.json')
    with open(path) as f:
        cfg = json.load(f)
    cfg.update(changes)
    with open(path, 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')


def _edit_tensors(adapter_dir, edit):
    path = os.path.join(adapter_dir, 'adapter_model.safetensors')
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={'format': 'pt'})


def build_invalid_adapters(model_dir, valid_dir):
    """Adapters that readAdapter (or the native checks) must reject; expected categories in the reference JSON."""
    from peft import LoraConfig, get_peft_model
    root = os.path.join(model_dir, 'invalid-adapters')
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)
    expected = {}

    def peft_adapter(name, **kwargs):
        torch.manual_seed(99)
        base = load_reference_model(model_dir)
        cfg = LoraConfig(init_lora_weights=False, task_type='CAUSAL_LM', **kwargs)
        get_peft_model(base, cfg).save_pretrained(os.path.join(root, name))
        _drop_model_card(os.path.join(root, name))
        _edit_config(os.path.join(root, name), base_model_name_or_path=os.path.basename(model_dir),
                     target_modules=sorted(kwargs['target_modules']))

    peft_adapter('dora', r=4, lora_alpha=8, target_modules=['q_proj', 'v_proj'], use_dora=True)
    expected['dora'] = {'code': 'unsupported_adapter', 'messageIncludes': 'DoRA'}
    peft_adapter('modules-to-save', r=4, lora_alpha=8, target_modules=['q_proj'], modules_to_save=['lm_head'])
    expected['modules-to-save'] = {'code': 'unsupported_adapter', 'messageIncludes': 'modules_to_save'}
    peft_adapter('rank-128', r=128, lora_alpha=128, target_modules=['q_proj'])
    expected['rank-128'] = {'code': 'incompatible', 'messageIncludes': 'rank 128', 'limits': {'maxRank': 64}}

    d = _copy_adapter(valid_dir, os.path.join(root, 'bias-all'))
    _edit_config(d, bias='all')
    _edit_tensors(d, lambda t: t.__setitem__('base_model.model.model.layers.0.self_attn.v_proj.bias',
                                             torch.zeros(32)))
    expected['bias-all'] = {'code': 'unsupported_adapter', 'messageIncludes': 'bias'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'wrong-shape'))
    key = 'base_model.model.model.layers.1.mlp.down_proj.lora_A.weight'
    _edit_tensors(d, lambda t: t.__setitem__(key, torch.ones(8, 96)))
    expected['wrong-shape'] = {'code': 'incompatible', 'messageIncludes': key}

    d = _copy_adapter(valid_dir, os.path.join(root, 'pickle-only'))
    tensors = load_file(os.path.join(d, 'adapter_model.safetensors'))
    torch.save(tensors, os.path.join(d, 'adapter_model.bin'))
    os.remove(os.path.join(d, 'adapter_model.safetensors'))
    expected['pickle-only'] = {'code': 'unsupported_adapter', 'messageIncludes': 'adapter_model.bin'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'nan-weights'))
    key_nan = 'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight'

    def put_nan(t):
        t[key_nan][3, 2] = float('nan')
        t[key_nan][5, 1] = float('inf')
    _edit_tensors(d, put_nan)
    # Structure is valid: readAdapter accepts it; the native host-adapter build rejects it ("corrupt adapter file").
    expected['nan-weights'] = {'code': 'native', 'structureValid': True, 'messageIncludes': 'corrupt adapter file'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'truncated'))
    path = os.path.join(d, 'adapter_model.safetensors')
    size = os.path.getsize(path)
    with open(path, 'r+b') as f:
        f.truncate(size - 1000)
    expected['truncated'] = {'code': 'unsupported_adapter', 'messageIncludes': 'corrupt adapter file'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'fan-in-fan-out'))
    _edit_config(d, fan_in_fan_out=True)
    expected['fan-in-fan-out'] = {'code': 'incompatible', 'messageIncludes': 'fan_in_fan_out'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'not-lora'))
    _edit_config(d, peft_type='IA3')
    expected['not-lora'] = {'code': 'unsupported_adapter', 'messageIncludes': 'IA3'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'added-tokens'))
    with open(os.path.join(d, 'added_tokens.json'), 'w') as f:
        json.dump({'<|new_token|>': 5000}, f)
    expected['added-tokens'] = {'code': 'unsupported_adapter', 'messageIncludes': 'added tokens'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'no-config'))
    os.remove(os.path.join(d, 'adapter_config.json'))
    expected['no-config'] = {'code': 'not_found', 'messageIncludes': 'adapter_config.json'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'bad-header'))
    path = os.path.join(d, 'adapter_model.safetensors')
    with open(path, 'r+b') as f:
        f.seek(8)
        f.write(b'{"broken json')
    expected['bad-header'] = {'code': 'unsupported_adapter', 'messageIncludes': 'corrupt adapter file'}

    d = _copy_adapter(valid_dir, os.path.join(root, 'outside-pool'))
    expected['outside-pool'] = {'code': 'incompatible', 'messageIncludes': 'down_proj',
                                'limits': {'targetModules': ['qkv_proj', 'o_proj']}}
    return expected


# ----------------------------------------------------------------------------------------------------------------
# Reference outputs (fp32 PyTorch + PEFT)
# ----------------------------------------------------------------------------------------------------------------

GREEDY_TOKENS = 16


def _round_list(values, digits=6):
    return [float(f'{v:.{digits}g}') for v in values]


def greedy(model, input_ids, steps, **forward_kwargs):
    """Greedy decoding by full re-forward (no cache): the plainest possible reference.
    Returns per-row tokens and per-row, per-step top-1 minus top-2 logit margins."""
    ids = input_ids.clone()
    tokens = [[] for _ in range(ids.shape[0])]
    margins = [[] for _ in range(ids.shape[0])]
    with torch.no_grad():
        for _ in range(steps):
            logits = model(input_ids=ids, **forward_kwargs).logits[:, -1, :]
            top2 = torch.topk(logits, 2, dim=-1).values
            nxt = logits.argmax(dim=-1)
            for row in range(ids.shape[0]):
                tokens[row].append(int(nxt[row]))
                margins[row].append(round(float(top2[row, 0] - top2[row, 1]), 4))
            ids = torch.cat([ids, nxt[:, None]], dim=1)
    return tokens, margins


def make_prompts(vocab_size, seed):
    generator = torch.Generator().manual_seed(seed)
    lengths = [5, 11, 8]
    prompts = [torch.randint(3, vocab_size, (n,), generator=generator).tolist() for n in lengths]
    # Equal-length prompts for the mixed batches (one per row; no padding, so positions are plain).
    batch_prompts = [torch.randint(3, vocab_size, (7,), generator=generator).tolist() for _ in range(6)]
    return prompts, batch_prompts


def _plain_key(key):
    return key.replace('.default.', '.').removesuffix('.default')


def _plain_key_copy(adapter_dir, scratch):
    tensors = load_file(os.path.join(adapter_dir, 'adapter_model.safetensors'))
    if all(_plain_key(k) == k for k in tensors):
        return adapter_dir
    copy = os.path.join(scratch, os.path.basename(adapter_dir))
    shutil.copytree(adapter_dir, copy)
    save_file({_plain_key(k): v for k, v in tensors.items()}, os.path.join(copy, 'adapter_model.safetensors'))
    return copy


def _check_loaded_exactly(peft_model, adapter_name, adapter_dir):
    """Every tensor of the adapter file must be what PEFT computes with (no silently ignored keys)."""
    params = dict(peft_model.named_parameters())
    for key, value in load_file(os.path.join(adapter_dir, 'adapter_model.safetensors')).items():
        key = _plain_key(key)
        if key.endswith('.weight'):
            name = key[:-len('.weight')] + f'.{adapter_name}.weight'
        else:
            name = f'{key}.{adapter_name}'
        if name not in params:
            raise SystemExit(f'{adapter_dir}: tensor {key} did not load into PEFT (no parameter {name})')
        if not torch.equal(params[name].detach(), value.to(torch.float32)):
            raise SystemExit(f'{adapter_dir}: PEFT parameter {name} differs from the file')


MIN_MARGIN = 0.003  # smallest allowed top-1/top-2 logit gap on every greedy step (fp32 engines differ by ~1e-5)


class NearTie(Exception):
    pass


def compute_reference(model_dir, name, recipe, adapter_dirs, tok_info, invalid):
    """Tries prompt seeds until every greedy step of every run has a clear winner (no near-ties)."""
    for attempt in range(40):
        try:
            return _compute_reference(model_dir, name, recipe, adapter_dirs, tok_info, invalid,
                                      recipe['seed'] + 7 + 1000 * attempt)
        except NearTie as tie:
            print(f'{name}: prompt seed attempt {attempt}: {tie}; trying other prompts', flush=True)
    raise SystemExit(f'{name}: no prompt set without near-ties found')


def _check_margins(margins, what):
    low = min(margins)
    if low < MIN_MARGIN:
        raise NearTie(f'{what} has a top-2 margin of {low}')


def _compute_reference(model_dir, name, recipe, adapter_dirs, tok_info, invalid, prompt_seed):
    from peft import PeftModel
    base = load_reference_model(model_dir)
    vocab = base.config.vocab_size
    prompts, batch_prompts = make_prompts(vocab, prompt_seed)
    adapter_names = [os.path.basename(d) for d in adapter_dirs]
    with tempfile.TemporaryDirectory() as scratch:
        # PEFT expects keys without the adapter name; load the renamed-key adapters from a plain-key copy.
        load_dirs = [_plain_key_copy(d, scratch) for d in adapter_dirs]
        peft_model = PeftModel.from_pretrained(base, load_dirs[0], adapter_name=adapter_names[0])
        for adapter_name, adapter_dir in zip(adapter_names[1:], load_dirs[1:]):
            peft_model.load_adapter(adapter_dir, adapter_name=adapter_name)
    peft_model.eval()
    for adapter_name, adapter_dir in zip(adapter_names, adapter_dirs):
        _check_loaded_exactly(peft_model, adapter_name, adapter_dir)

    def run_single(adapter):
        results = []
        for prompt in prompts:
            ids = torch.tensor([prompt])
            row = ['__base__' if adapter is None else adapter]
            with torch.no_grad():
                logits = peft_model(input_ids=ids, adapter_names=row).logits[0, -1, :]
            tokens, margins = greedy(peft_model, ids, GREEDY_TOKENS, adapter_names=row)
            _check_margins(margins[0], f'{row[0]} on a prompt of {len(prompt)} tokens')
            results.append({'lastLogits': _round_list(logits.tolist()), 'greedy': tokens[0],
                            'top2Margins': margins[0]})
        return results

    base_runs = run_single(None)
    adapters_out = []
    for adapter_name, adapter_dir in zip(adapter_names, adapter_dirs):
        with open(os.path.join(adapter_dir, 'adapter_config.json')) as f:
            cfg = json.load(f)
        runs = run_single(adapter_name)
        changed = sum(r['greedy'] != b['greedy'] for r, b in zip(runs, base_runs))
        if changed == 0:
            raise SystemExit(f'{name}/{adapter_name}: the adapter does not change any greedy output; raise its gain')
        keys = sorted(load_file(os.path.join(adapter_dir, 'adapter_model.safetensors')).keys())
        adapters_out.append({
            'name': adapter_name, 'path': f'adapters/{adapter_name}', 'r': cfg['r'], 'loraAlpha': cfg['lora_alpha'],
            'useRslora': cfg.get('use_rslora', False), 'targetModules': cfg['target_modules'],
            'rankPattern': cfg.get('rank_pattern') or {}, 'alphaPattern': cfg.get('alpha_pattern') or {},
            'numTensors': len(keys), 'prompts': runs,
        })

    batches_out = []
    for rows in MIXED_BATCHES[name]:
        ids = torch.tensor(batch_prompts[:len(rows)])
        with torch.no_grad():
            logits = peft_model(input_ids=ids, adapter_names=rows).logits[:, -1, :]
        tokens, margins = greedy(peft_model, ids, GREEDY_TOKENS, adapter_names=rows)
        for row_margins in margins:
            _check_margins(row_margins, f'mixed batch {rows}')
        # Cross-check: PEFT's own generate() with adapter_names must give the same tokens (spec's oracle).
        from transformers import GenerationConfig
        # Plain greedy: drop the model's sampling defaults (repetition_penalty!) and eos (compare all steps).
        peft_model.base_model.model.generation_config = GenerationConfig(eos_token_id=None, pad_token_id=0)
        gen = peft_model.generate(input_ids=ids, adapter_names=rows, attention_mask=torch.ones_like(ids),
                                  generation_config=GenerationConfig(max_new_tokens=GREEDY_TOKENS, do_sample=False,
                                                                     eos_token_id=None, pad_token_id=0))
        if gen[:, ids.shape[1]:].tolist() != tokens:
            raise SystemExit(f'{name}: PEFT generate() disagrees with the re-forward greedy loop for {rows}')
        # Cross-check: every row equals the same prompt run alone with that adapter.
        for row_index, adapter in enumerate(rows):
            with torch.no_grad():
                single = peft_model(input_ids=ids[row_index:row_index + 1], adapter_names=[adapter]).logits[0, -1]
            if not torch.allclose(single, logits[row_index], atol=1e-4, rtol=1e-4):
                raise SystemExit(f'{name}: mixed-batch row {row_index} ({adapter}) differs from its single run')
        batches_out.append({
            'adapters': rows, 'prompts': ids.tolist(),
            'lastLogits': [_round_list(r) for r in logits.tolist()],
            'greedy': tokens, 'top2Margins': margins,
        })

    return {
        'model': name,
        'modelPath': f'models/{name}',
        'architecture': recipe['arch'],
        'weightDtype': str(recipe['dtype']).replace('torch.', ''),
        'vocabSize': vocab,
        'bosTokenId': tok_info['bos'],
        'eosTokenIds': tok_info['eos'],
        'generator': {'torch': torch.__version__, 'transformers': __import__('transformers').__version__,
                      'peft': __import__('peft').__version__, 'tokenizers': __import__('tokenizers').__version__},
        'computeDtype': 'float32',
        'minTop2Margin': MIN_MARGIN,
        'greedyTokens': GREEDY_TOKENS,
        'prompts': prompts,
        'base': base_runs,
        'adapters': adapters_out,
        'mixedBatches': batches_out,
        'invalidAdapters': invalid,
        'tokenizer': tokenizer_expectations(model_dir, tok_info),
        'chatTemplate': chat_template_expectations(model_dir),
    }


# ----------------------------------------------------------------------------------------------------------------

def main():
    torch.set_num_threads(2)
    only = set(sys.argv[1:])
    os.makedirs(os.path.join(FIXTURES, 'reference'), exist_ok=True)
    for index, (name, recipe) in enumerate(MODEL_RECIPES.items()):
        if only and name not in only:
            continue
        model_dir = os.path.join(FIXTURES, 'models', name)
        if os.path.isdir(model_dir):
            shutil.rmtree(model_dir)
        os.makedirs(model_dir)
        if recipe['tokenizer'] == 'byte_fallback':
            tok_info = build_byte_fallback_tokenizer(model_dir, recipe['vocab_target'])
        else:
            tok_info = build_byte_level_tokenizer(model_dir, recipe['vocab_target'])
        build_model(model_dir, recipe, tok_info)
        adapter_dirs = [build_adapter(model_dir, adapter_name, adapter_recipe, 1000 * index + i)
                        for i, (adapter_name, adapter_recipe) in enumerate(ADAPTER_RECIPES[name].items())]
        invalid = {}
        if name == 'tiny-llama':
            invalid = build_invalid_adapters(model_dir, os.path.join(model_dir, 'adapters', 'r8-vdown'))
        reference = compute_reference(model_dir, name, recipe, adapter_dirs, tok_info, invalid)
        out = os.path.join(FIXTURES, 'reference', f'{name}.json')
        with open(out, 'w') as f:
            json.dump(reference, f, separators=(',', ':'), ensure_ascii=False)
            f.write('\n')
        print(f'{name}: wrote {os.path.relpath(out, ROOT)} ({os.path.getsize(out)} bytes)', flush=True)


if __name__ == '__main__':
    main()
