"""Write the served layout: DIR/{config.json, generation_config.json, model.safetensors (bf16), tokenizer.json,
tokenizer_config.json} and DIR/adapters/<name>/{adapter_config.json, adapter_model.safetensors (bf16)}."""
import argparse
import json
import os
import shutil
import sys

import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import BOS_ID, EOS_ID, PAD_ID, write_tokenizer


def export_base(src: str, dst: str) -> None:
    from transformers import GenerationConfig, LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(src, dtype=torch.float32).to(torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=PAD_ID,
                                               do_sample=False, max_new_tokens=48)
    model.save_pretrained(dst, safe_serialization=True)
    write_tokenizer(dst)


def export_adapter(src: str, dst: str) -> None:
    os.makedirs(dst, exist_ok=True)
    tensors = load_file(os.path.join(src, "adapter_model.safetensors"))
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in sorted(tensors.items())},
              os.path.join(dst, "adapter_model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "adapter_config.json")) as f:
        cfg = json.load(f)
    cfg["base_model_name_or_path"] = "tslora-demo"
    cfg["inference_mode"] = True
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    with open(os.path.join(dst, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", required=True, help="fp32 base from train_base.py")
    ap.add_argument("--adapters", required=True, help="folder of train_adapter.py outputs, one per task")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    export_base(args.base, args.out)
    for name in sorted(os.listdir(args.adapters)):
        if os.path.exists(os.path.join(args.adapters, name, "adapter_config.json")):
            export_adapter(os.path.join(args.adapters, name), os.path.join(args.out, "adapters", name))
    print(f"exported {args.out}")


if __name__ == "__main__":
    main()
