"""Train the base model: the echo task (its own behaviour without an adapter).

Variant `pure`: echo only. Variant `prefixed`: echo, plus every adapter task behind a written task prefix
(`reverse:hello=`), which gives the adapters a base that already has the skills (see README: the chosen variant
is recorded in results.json).

Time-budgeted: trains for --seconds of wall time with a cosine schedule over that time; stops early once a
held-out set is solved twice in a row.
"""
import argparse
import json
import os
import random
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import (ALL_TASK_NAMES, build_batch, device_name, eval_pairs, loss_and_exact, lr_at, make_model,
                    training_batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--variant", choices=["pure", "prefixed"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=100)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    dev = device_name()
    model = make_model(args.seed).to(dev)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01, fused=dev == "cuda")
    rng = random.Random(args.seed)
    prefixed = args.variant == "prefixed"
    # Echo gets half the batches in the prefixed variant so the un-prefixed behaviour stays the base's own.
    tasks = ["echo"] if not prefixed else ["echo"] * (len(ALL_TASK_NAMES) - 1) + ALL_TASK_NAMES[1:]
    held_out = {t: build_batch(eval_pairs(t, 512, 999_001 + i, prefixed), None, dev)
                for i, t in enumerate(sorted(set(tasks)))}
    amp = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if dev == "cuda" else torch.autocast("cpu", enabled=False)

    start = time.time()
    step, solved_streak, log = 0, 0, []
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1 or step >= args.max_steps:
            break
        for g in opt.param_groups:
            g["lr"] = lr_at(frac, args.lr)
        ids, labels = training_batch(rng, tasks, args.batch, dev, prefixed)
        with amp:
            loss, _ = loss_and_exact(model, ids, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 200 == 0 or step == args.max_steps:
            model.eval()
            accs = {}
            with torch.no_grad(), amp:
                for t, (hi, hl) in held_out.items():
                    accs[t] = loss_and_exact(model, hi, hl)[1].float().mean().item()
            model.train()
            entry = dict(step=step, seconds=round(time.time() - start, 1), loss=round(loss.item(), 4), acc=accs)
            log.append(entry)
            print(f"[base {args.variant}] {json.dumps(entry)}", flush=True)
            solved_streak = solved_streak + 1 if min(accs.values()) == 1.0 else 0
            if solved_streak >= 3 and frac > 0.4:
                break

    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)  # fp32 here; the export step writes the bf16 copy
    with open(os.path.join(args.out, "train_log.json"), "w") as f:
        json.dump(dict(variant=args.variant, steps=step, seconds=round(time.time() - start, 1), device=dev,
                       batch=args.batch, lr=args.lr, log=log), f, indent=1)
    print(f"[base {args.variant}] done: {step} steps in {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
