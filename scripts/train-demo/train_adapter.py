"""Train one LoRA adapter (PEFT) on its task with the base frozen. The base's weights are first rounded to bf16,
as they ship, so the adapter learns on exactly the base it will be served with. Time-budgeted like train_base.py.
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import build_batch, device_name, eval_pairs, loss_and_exact, lr_at, training_batch
from tasks import ADAPTERS


def load_base_bf16_rounded(path: str, dev: str):
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(path, dtype=torch.float32)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model.to(dev)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True)
    ap.add_argument("--task", choices=sorted(ADAPTERS), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=200)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()

    from peft import LoraConfig, get_peft_model

    torch.set_num_threads(1)
    dev = device_name()
    torch.manual_seed(args.seed)
    base = load_base_bf16_rounded(args.base, dev)
    shape = ADAPTERS[args.task]
    cfg = LoraConfig(r=shape["r"], lora_alpha=shape["lora_alpha"], target_modules=shape["target_modules"],
                     use_rslora=shape["use_rslora"], lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")
    model = get_peft_model(base, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, betas=(0.9, 0.98), weight_decay=0.0, fused=dev == "cuda")
    rng = random.Random(args.seed * 1000 + sorted(ADAPTERS).index(args.task))
    held_out = build_batch(eval_pairs(args.task, 1024, 888_001 + sorted(ADAPTERS).index(args.task)), None, dev)
    amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if dev == "cuda" else torch.autocast("cpu", enabled=False)

    start = time.time()
    step, solved_streak, log = 0, 0, []
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1 or step >= args.max_steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, args.lr)
        ids, labels = training_batch(rng, [args.task], args.batch, dev)
        with amp:
            loss, _ = loss_and_exact(model, ids, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 200 == 0 or step == args.max_steps:
            model.eval()
            with torch.no_grad(), amp:
                acc = loss_and_exact(model, *held_out)[1].float().mean().item()
            model.train()
            entry = dict(step=step, seconds=round(time.time() - start, 1), loss=round(loss.item(), 4), acc=acc)
            log.append(entry)
            print(f"[{args.task}] {json.dumps(entry)}", flush=True)
            solved_streak = solved_streak + 1 if acc == 1.0 else 0
            if solved_streak >= 3 and frac > 0.4:
                break

    model.save_pretrained(args.out)
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(dict(task=args.task, steps=step, seconds=round(time.time() - start, 1), device=dev,
                       batch=args.batch, lr=args.lr, lora=shape, log=log), f, indent=1)
    print(f"[{args.task}] done: {step} steps in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
