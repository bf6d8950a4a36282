#!/usr/bin/env python3
"""RoPE-scaling fixtures: two tiny random Llama models whose RoPE is scaled the two ways real checkpoints use,
'linear' (position interpolation, factor 4) and 'llama3' (frequency bands, factor 8, original context 32), with
fp32 PyTorch + transformers logits at positions far past the original context (prompts of 40, 150 and 300 tokens).

Run from the repository root:  python3 scripts/make-fixtures-rope.py [--out DIR]
Writes DIR/models/rope-{linear,llama3}/ and DIR/reference/rope-scaling.json (DIR defaults to test/fixtures; the
tokenizer is tiny-llama's, copied). Deterministic (fixed seeds); test/native/rope-scaling.test.ts reads the output and
test/native/fixture-drift.test.ts regenerates it into a temporary DIR and compares.
"""
import argparse
import json
import os
import shutil

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
TOKENIZER_FROM = os.path.join(ROOT, 'test', 'fixtures', 'models', 'tiny-llama')
TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']

COMMON = dict(vocab_size=384, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, max_position_embeddings=1024, rms_norm_eps=1e-5,
              rope_theta=10000.0, tie_word_embeddings=False, initializer_range=0.3, bos_token_id=1, eos_token_id=2)
RECIPES = {
    'rope-linear': {'seed': 41, 'rope_scaling': {'rope_type': 'linear', 'factor': 4.0}},
    'rope-llama3': {'seed': 42, 'rope_scaling': {'rope_type': 'llama3', 'factor': 8.0, 'low_freq_factor': 1.0,
                                                 'high_freq_factor': 4.0, 'original_max_position_embeddings': 32}},
}
PROMPT_LENGTHS = [40, 150, 300]
GREEDY_TOKENS = 8


def build(model_dir, recipe):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(recipe['seed'])
    config = LlamaConfig(**COMMON, rope_scaling=dict(recipe['rope_scaling']))
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(recipe['seed'] + 100)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name == 'model.norm.weight':
                param.copy_(2.0 + 2.0 * torch.rand(param.shape, generator=generator))  # wide logits: clear greedy margins
            elif name.endswith('norm.weight'):
                param.copy_(0.5 + torch.rand(param.shape, generator=generator))
    model.save_pretrained(model_dir)
    config_path = os.path.join(model_dir, 'config.json')
    with open(config_path) as f:
        cfg = json.load(f)
    if 'rope_parameters' in cfg:  # the spelling of real Llama checkpoints: rope_theta + rope_scaling
        params = dict(cfg.pop('rope_parameters'))
        cfg['rope_theta'] = params.pop('rope_theta')
        cfg['rope_scaling'] = params
    with open(config_path, 'w') as f:
        json.dump(cfg, f, indent=2)
        f.write('\n')
    for name in TOKENIZER_FILES:
        shutil.copy(os.path.join(TOKENIZER_FROM, name), os.path.join(model_dir, name))


def reference(model_dir, name, recipe):
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation='eager').eval()
    generator = torch.Generator().manual_seed(recipe['seed'] + 7)
    prompts, last_logits, greedy, margins = [], [], [], []
    for length in PROMPT_LENGTHS:
        ids = torch.randint(3, COMMON['vocab_size'], (1, length), generator=generator)
        out = []
        with torch.no_grad():
            seq = ids
            for step in range(GREEDY_TOKENS):
                logits = model(seq).logits[0, -1].double()
                if step == 0:
                    last_logits.append([round(float(v), 6) for v in logits])
                top = torch.topk(logits, 2).values
                margins.append(float(top[0] - top[1]))
                nxt = int(torch.argmax(logits))
                out.append(nxt)
                seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
        prompts.append([int(v) for v in ids[0]])
        greedy.append(out)
    return {'name': name, 'modelPath': f'models/{name}', 'ropeScaling': recipe['rope_scaling'], 'prompts': prompts,
            'lastLogits': last_logits, 'greedy': greedy, 'minGreedyMargin': round(min(margins), 6)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--out', default=os.path.join(ROOT, 'test', 'fixtures'))
    args = parser.parse_args()
    torch.set_num_threads(2)
    import transformers
    result = {'generator': 'scripts/make-fixtures-rope.py', 'torch': torch.__version__,
              'transformers': transformers.__version__, 'greedyTokens': GREEDY_TOKENS, 'models': []}
    for name, recipe in RECIPES.items():
        model_dir = os.path.join(args.out, 'models', name)
        if os.path.isdir(model_dir):
            shutil.rmtree(model_dir)
        os.makedirs(model_dir)
        build(model_dir, recipe)
        result['models'].append(reference(model_dir, name, recipe))
    os.makedirs(os.path.join(args.out, 'reference'), exist_ok=True)
    out = os.path.join(args.out, 'reference', 'rope-scaling.json')
    with open(out, 'w') as f:
        json.dump(result, f, separators=(',', ':'))
        f.write('\n')
    print(f'wrote {out} ({os.path.getsize(out)} bytes)', flush=True)


if __name__ == '__main__':
    main()
