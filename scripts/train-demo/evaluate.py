"""PyTorch + PEFT reference evaluation of an exported demo model (bf16 weights, fp32 compute).

1. Exact-match accuracy per task on --n fresh inputs (Mulberry32, --seed; training never used this generator).
   Greedy exact match is measured under teacher forcing (equivalent, see common.loss_and_exact).
2. Real greedy decoding of a mixed batch: --ref-n inputs per task from --ref-seed, all adapters and the base
   in the same forward passes (PEFT adapter_names), recorded row by row in reference.json. The TypeScript test
   regenerates these inputs from the same seed and compares the tslora engine with them.
"""
import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BOS_ID, EOS_ID, build_batch, decode, device_name, encode, eval_pairs, loss_and_exact
from tasks import ADAPTERS, TASKS

BASE = "__base__"


def load(model_dir: str, dev: str):
    from peft import PeftModel
    from transformers import LlamaForCausalLM

    base = LlamaForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    names = sorted(os.listdir(os.path.join(model_dir, "adapters")))
    model = PeftModel.from_pretrained(base, os.path.join(model_dir, "adapters", names[0]), adapter_name=names[0])
    for n in names[1:]:
        model.load_adapter(os.path.join(model_dir, "adapters", n), adapter_name=n)
    return model.to(dev).eval(), names


def adapter_for(task: str) -> str:
    return BASE if task == "echo" else task


@torch.no_grad()
def exact_accuracy(model, task: str, n: int, seed: int, dev: str) -> float:
    right = 0
    pairs = eval_pairs(task, n, seed)
    for i in range(0, n, 500):
        chunk = pairs[i:i + 500]
        ids, labels = build_batch(chunk, None, dev)
        _, ok = loss_and_exact(model, ids, labels, adapter_names=[adapter_for(task)] * len(chunk))
        right += int(ok.sum().item())
    return right / n


@torch.no_grad()
def greedy_mixed(model, rows, dev: str, max_new: int = 48):
    """rows: [(task, prompt)]. Groups rows by prompt length (no padding needed); each group is one mixed batch."""
    out = [None] * len(rows)
    by_len = {}
    for i, (task, prompt) in enumerate(rows):
        by_len.setdefault(len(prompt), []).append(i)
    for idxs in by_len.values():
        ids = torch.tensor([[BOS_ID] + encode(rows[i][1]) for i in idxs], device=dev)
        names = [adapter_for(rows[i][0]) for i in idxs]
        done = torch.zeros(len(idxs), dtype=torch.bool, device=dev)
        gen = []
        for _ in range(max_new):
            nxt = model(input_ids=ids, adapter_names=names).logits[:, -1].argmax(-1)
            gen.append(nxt)
            done |= nxt == EOS_ID
            ids = torch.cat([ids, nxt[:, None]], dim=1)
            if bool(done.all()):
                break
        gen = torch.stack(gen, 1).tolist()
        for row, i in zip(gen, idxs):
            toks = row[: row.index(EOS_ID)] if EOS_ID in row else row
            out[i] = dict(text=decode(toks), ended=EOS_ID in row)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--out", required=True, help="results JSON")
    ap.add_argument("--reference", help="write the mixed-batch reference JSON here")
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=31337)
    ap.add_argument("--ref-n", type=int, default=48)
    ap.add_argument("--ref-seed", type=int, default=20261129)
    args = ap.parse_args()

    dev = device_name()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    t0 = time.time()
    model, names = load(args.model, dev)
    assert sorted(names) == sorted(ADAPTERS), names
    acc = {t: exact_accuracy(model, t, args.n, args.seed + i, dev) for i, t in enumerate(TASKS)}
    print("teacher-forced exact match:", json.dumps(acc), flush=True)

    rows, expected = [], []
    for i, t in enumerate(TASKS):
        for prompt, answer in eval_pairs(t, args.ref_n, args.ref_seed + i):
            rows.append((t, prompt))
            expected.append(answer)
    outs = greedy_mixed(model, rows, dev)
    greedy_acc = {}
    for t in TASKS:
        hits = [o["text"] == e and o["ended"] for (tt, _), o, e in zip(rows, outs, expected) if tt == t]
        greedy_acc[t] = sum(hits) / len(hits)
    print("mixed-batch greedy exact match:", json.dumps(greedy_acc), flush=True)

    results = dict(
        device=dev, torch=torch.__version__, weights="bf16 (computed in fp32)",
        exact_match=dict(n_per_task=args.n, seed=args.seed, generator="Mulberry32(seed + task index)",
                         accuracy=acc),
        mixed_batch_greedy=dict(n_per_task=args.ref_n, seed=args.ref_seed, accuracy=greedy_acc),
        seconds=round(time.time() - t0, 1),
    )
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    if args.reference:
        ref = dict(
            note="PyTorch + PEFT greedy outputs of models/demo (bf16 weights, fp32 compute), all adapters and the "
                 "base mixed in the same batches. Inputs: Mulberry32(seed + task index) through "
                 "scripts/train-demo/tasks.py; task order as in 'tasks'.",
            seed=args.ref_seed, n_per_task=args.ref_n, tasks=list(TASKS),
            adapters={t: adapter_for(t) for t in TASKS},
            accuracy=dict(pytorch_teacher_forced=acc, pytorch_mixed_greedy=greedy_acc),
            rows=[dict(task=t, prompt=p, expected=e, pytorch=o["text"]) for (t, p), e, o in zip(rows, expected, outs)],
        )
        with open(args.reference, "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
