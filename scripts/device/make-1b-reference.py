#!/usr/bin/env python3
"""Random Llama-3.2-1B-shaped model + PEFT LoRA adapters (rank 8 / 16 / 64, one with lm_head) + PyTorch + PEFT reference outputs,
for test/gpu/cuda-parity-1b.test.ts (which reads them through TSLORA_1B_REFERENCE=<out>/reference.json).

Runs on the GPU machine (transformers + peft there), writes everything under --out (default /tmp/tslora-1b):
  model/                 config.json, model.safetensors (bf16), byte-level tokenizer, generation_config.json
  adapters/<name>/       PEFT adapter_config.json + adapter_model.safetensors (values rounded to bf16, stored fp32)
  logits/<case>-p<i>.f32 teacher-forced fp32 logits, [greedyTokens][vocab] float32 little-endian: row t is the
                         distribution after prompt + greedy[:t] (row 0 = the prefill's last position)
  reference.json         prompts, per case (base + each adapter) the 16 greedy tokens and the logits files

The reference runs in fp32 (TF32 off) on the bf16-rounded weights, i.e. what the engine loads, without its bf16
activation rounding. Greedy tokens are free-running fp32 greedy decoding. Shapes default to Llama-3.2-1B (hidden
2048, 32 heads / 8 KV heads of 64, intermediate 8192, vocab 128256, llama3 RoPE scaling, tied embeddings) with
--layers 4; smaller shapes (--hidden etc.) exist for a quick CPU check of this script and the test's plumbing.
"""
import argparse
import json
import os
import shutil
import time

import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM

ADAPTERS = [
    # name, rank, alpha, target modules (PEFT names)
    ('r8-qv', 8, 16, ['q_proj', 'v_proj']),
    ('r16-all', 16, 32, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']),
    ('r64-mlp-o', 64, 64, ['o_proj', 'gate_proj', 'up_proj', 'down_proj']),
    ('r16-v-lmhead', 16, 32, ['v_proj', 'lm_head']),  # lm_head LoRA (tied embeddings: only the head gets the delta)
]
# The last prompt is longer than 32 tokens, so the engine's prefill forms > 32-row LoRA segments (the triton runners':
# one segment per request), where DeviceLoraPool runs the wide tiled expand. Appended last: the first three prompts
# (drawn first from the same generator) stay what they were. Prompt + 16 greedy tokens must fit the test's 64-token
# KV tables (test/gpu/cuda-parity-helpers.ts).
PROMPT_LENGTHS = [7, 13, 21, 45]


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument('--out', default='/tmp/tslora-1b')
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--hidden', type=int, default=2048)
    p.add_argument('--intermediate', type=int, default=8192)
    p.add_argument('--heads', type=int, default=32)
    p.add_argument('--kv-heads', type=int, default=8)
    p.add_argument('--vocab', type=int, default=128256)
    p.add_argument('--init', type=float, default=0.02, help='initializer_range (std of every weight)')
    p.add_argument('--greedy-tokens', type=int, default=16)
    p.add_argument('--lora-b-std', type=float, default=0.05, help='std of the random lora_B (PEFT initialises it to 0)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--seed', type=int, default=1234)
    return p.parse_args()


def write_tokenizer(model_dir):
    """256 byte tokens (no merges) + two specials: enough for loadModel; the test feeds token ids directly."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(['<|begin_of_text|>', '<|end_of_text|>'])
    tok.save(os.path.join(model_dir, 'tokenizer.json'))
    with open(os.path.join(model_dir, 'tokenizer_config.json'), 'w') as f:
        json.dump({'bos_token': '<|begin_of_text|>', 'eos_token': '<|end_of_text|>', 'model_max_length': 131072,
                   'tokenizer_class': 'PreTrainedTokenizerFast'}, f, indent=2)


def round_bf16_(module):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.bfloat16).to(p.dtype))


@torch.no_grad()
def greedy_and_logits(model, prompt, n, device):
    """Free-running fp32 greedy (full forward each step, no cache) and the teacher-forced logits [n][V]."""
    ids = list(prompt)
    for _ in range(n):
        logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1]
        ids.append(int(torch.argmax(logits)))
    greedy = ids[len(prompt):]
    full = model(input_ids=torch.tensor([ids[:-1]], device=device)).logits[0, len(prompt) - 1:]
    assert full.shape[0] == n
    mismatches = sum(int(a) != b for a, b in zip(torch.argmax(full, dim=-1).tolist(), greedy))
    if mismatches:  # an fp32 near-tie between two forward lengths; the test's near-tie rule covers it
        print(f'note: {mismatches} teacher-forced argmax differ from free-running greedy (fp32 near-tie)', flush=True)
    top2 = torch.topk(full, 2, dim=-1).values
    return greedy, full.float().cpu().contiguous(), float((top2[:, 0] - top2[:, 1]).min())


def main():
    args = parse_args()
    t0 = time.time()
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    model_dir = os.path.join(out, 'model')
    os.makedirs(os.path.join(out, 'logits'))
    os.makedirs(model_dir)
    config = LlamaConfig(
        vocab_size=args.vocab, hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        head_dim=args.hidden // args.heads, max_position_embeddings=131072, rms_norm_eps=1e-5,
        rope_theta=500000.0,
        rope_scaling={'rope_type': 'llama3', 'factor': 32.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                      'original_max_position_embeddings': 8192},
        tie_word_embeddings=True, bos_token_id=256, eos_token_id=257, hidden_act='silu', initializer_range=args.init,
        attention_bias=False, mlp_bias=False)
    config._attn_implementation = 'eager'
    with torch.device(args.device):
        model = LlamaForCausalLM(config).float()
    with torch.no_grad():
        # Non-trivial norm weights, so that a norm applied with the wrong weight shows.
        for name, p in model.named_parameters():
            if name.endswith('norm.weight'):
                p.copy_(1 + 0.1 * torch.randn_like(p))
    round_bf16_(model)
    model.eval()
    # Saved as bf16 from a converted state dict: converting the model itself would also round its rotary
    # inv_freq buffer to bf16, and the reference would then use a RoPE the engine (and HF on reload) does not.
    bf16_state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
    model.save_pretrained(model_dir, state_dict=bf16_state, safe_serialization=True)
    del bf16_state
    write_tokenizer(model_dir)
    print(f'model written ({time.time() - t0:.1f} s)', flush=True)

    gen = torch.Generator().manual_seed(args.seed + 1)
    prompts = [torch.randint(0, min(args.vocab, 128000), (n,), generator=gen).tolist() for n in PROMPT_LENGTHS]
    cases = []

    def record(name, m, adapter_path, rank, targets):
        greedy_all, files, margin = [], [], float('inf')
        for i, prompt in enumerate(prompts):
            greedy, logits, m2 = greedy_and_logits(m, prompt, args.greedy_tokens, args.device)
            rel = f'logits/{name}-p{i}.f32'
            logits.numpy().astype('<f4').tofile(os.path.join(out, rel))
            greedy_all.append(greedy)
            files.append(rel)
            margin = min(margin, m2)
        cases.append({'name': name, 'adapterPath': adapter_path, 'rank': rank, 'targetModules': targets,
                      'greedy': greedy_all, 'logitsFiles': files, 'minTop2Margin': margin})
        print(f'{name}: greedy {greedy_all[0][:8]}..., min top-2 margin {margin:.4f} ({time.time() - t0:.1f} s)',
              flush=True)

    record('__base__', model, None, 0, [])
    for name, rank, alpha, targets in ADAPTERS:
        cfg = LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0, bias='none',
                         task_type='CAUSAL_LM')
        peft_model = get_peft_model(model, cfg)
        with torch.no_grad():
            for pname, p in peft_model.named_parameters():
                if 'lora_B' in pname:
                    p.normal_(0, args.lora_b_std, generator=None)
        round_bf16_(peft_model)
        peft_model.eval()
        adapter_dir = os.path.join(out, 'adapters', name)
        peft_model.save_pretrained(adapter_dir, safe_serialization=True, save_embedding_layers=False)
        record(name, peft_model, os.path.relpath(adapter_dir, out), rank, targets)
        model = peft_model.unload()
    # The adapters should change the model's greedy tokens, or the test would check LoRA only through the logits.
    for c in cases[1:]:
        if c['greedy'] == cases[0]['greedy']:
            print(f"warning: adapter {c['name']} does not change the greedy tokens", flush=True)

    reference = {
        'modelPath': 'model', 'vocabSize': args.vocab, 'greedyTokens': args.greedy_tokens, 'prompts': prompts,
        'shape': {'layers': args.layers, 'hidden': args.hidden, 'intermediate': args.intermediate,
                  'heads': args.heads, 'kvHeads': args.kv_heads},
        'torch': torch.__version__, 'device': torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu',
        'cases': cases,
    }
    with open(os.path.join(out, 'reference.json'), 'w') as f:
        json.dump(reference, f)
    print(f'reference written to {out}/reference.json ({time.time() - t0:.1f} s)', flush=True)


if __name__ == '__main__':
    main()
