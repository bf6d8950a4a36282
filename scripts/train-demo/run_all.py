"""Whole pipeline: bases -> adapters (all in parallel) -> export (bf16) -> evaluate -> pick a variant.

    python3 scripts/train-demo/run_all.py --work /tmp/demo-work --base-seconds 100 --adapter-seconds 200

Trains the `pure` base (echo only) and, as a fallback, the `prefixed` base (echo + the tasks behind written
prefixes) side by side, one process each, then every adapter on each base, one process each. Exports both,
evaluates both with PyTorch + PEFT, and picks `pure` when every task reaches --min-acc, else the variant with the
higher minimum. Results: WORK/results.json; the picked model: WORK/export-<variant>.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tasks import ADAPTERS  # noqa: E402


def run_parallel(cmds, log):
    procs = []
    for name, cmd in cmds:
        print(f"start {name}: {' '.join(cmd)}", flush=True)
        procs.append((name, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    failed = []
    for name, p in procs:
        out, _ = p.communicate()
        log.write(out)
        log.flush()
        lines = out.strip().splitlines()
        print(f"--- {name} rc={p.returncode}: " + (lines[-1] if lines else ""), flush=True)
        if p.returncode != 0:
            print(out[-3000:], flush=True)
            failed.append(name)
    return failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--variants", default="pure,prefixed")
    ap.add_argument("--base-seconds", type=float, default=100)
    ap.add_argument("--adapter-seconds", type=float, default=200)
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--eval-n", type=int, default=2000)
    ap.add_argument("--ref-n", type=int, default=48)
    ap.add_argument("--min-acc", type=float, default=0.99)
    args = ap.parse_args()

    py = sys.executable
    variants = args.variants.split(",")
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "train.log"), "w")
    t0 = time.time()
    common = ["--max-steps", str(args.max_steps), "--batch", str(args.batch)]

    failed = run_parallel([(f"base-{v}", [py, f"{HERE}/train_base.py", "--variant", v, "--out",
                                          f"{args.work}/base-{v}", "--seconds", str(args.base_seconds)] + common)
                           for v in variants], log)
    variants = [v for v in variants if f"base-{v}" not in failed]
    t_base = time.time() - t0

    cmds = [(f"{v}/{task}", [py, f"{HERE}/train_adapter.py", "--base", f"{args.work}/base-{v}", "--task", task,
                             "--out", f"{args.work}/adapters-{v}/{task}", "--seconds", str(args.adapter_seconds)]
             + common) for v in variants for task in ADAPTERS]
    failed = run_parallel(cmds, log)
    variants = [v for v in variants if not any(f.startswith(v + "/") for f in failed)]
    t_adapters = time.time() - t0 - t_base

    summary = dict(base_seconds=round(t_base, 1), adapter_seconds=round(t_adapters, 1), variants={})
    for v in variants:
        exp = f"{args.work}/export-{v}"
        subprocess.run([py, f"{HERE}/export.py", "--base", f"{args.work}/base-{v}", "--adapters",
                        f"{args.work}/adapters-{v}", "--out", exp], check=True)
        subprocess.run([py, f"{HERE}/evaluate.py", "--model", exp, "--out", f"{exp}/results.json", "--reference",
                        f"{exp}/reference.json", "--n", str(args.eval_n), "--ref-n", str(args.ref_n)], check=True)
        with open(f"{exp}/results.json") as f:
            res = json.load(f)
        res["train"] = {}
        for name in ["base"] + list(ADAPTERS):
            p = f"{args.work}/base-{v}/train_log.json" if name == "base" else f"{args.work}/adapters-{v}/{name}/train_log.json"
            with open(p) as f:
                tl = json.load(f)
            res["train"][name] = dict(steps=tl["steps"], seconds=tl["seconds"], device=tl["device"],
                                      batch=tl["batch"], lr=tl["lr"], last=tl["log"][-1] if tl["log"] else None)
        with open(f"{exp}/results.json", "w") as f:
            json.dump(res, f, indent=2)
            f.write("\n")
        summary["variants"][v] = dict(min_acc=min(res["exact_match"]["accuracy"].values()),
                                      accuracy=res["exact_match"]["accuracy"])
    ok = [v for v in variants if summary["variants"][v]["min_acc"] >= args.min_acc]
    pick = "pure" if "pure" in ok else max(variants, key=lambda v: summary["variants"][v]["min_acc"])
    summary["picked"] = pick
    summary["total_seconds"] = round(time.time() - t0, 1)
    with open(f"{args.work}/results.json", "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=1), flush=True)


if __name__ == "__main__":
    main()
