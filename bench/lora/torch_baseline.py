"""Plain PyTorch baseline for the LoRA kernels (kernel-anchor.md's right-hand column), same shapes and cases as
lora_cuda_bench: per-adapter matmuls (gather rows, x·Aᵀ, per-slice ·Bᵀ, index_add) and, for decode, a gathered bmm;
each captured in a CUDA graph over 8 rotating adapter sets and replayed. Prints µs per layer (qkv + gate_up + down).
Usage: python3 torch_baseline.py [out.json]"""
import json
import sys

import torch

DEV, DT = 'cuda', torch.bfloat16
MODULES = {'qkv': (4096, [4096, 1024, 1024]), 'gate_up': (4096, [14336, 14336]), 'down': (14336, [4096])}
CASES = [('decode 64x1 r16', 64, 1, 16), ('prefill 8x512 r64', 8, 512, 64)]
SETS, ADAPTERS = 8, 8


def graph_us(fn, replays):
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    graph.replay()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(replays):
        graph.replay()
    stop.record()
    torch.cuda.synchronize()
    return start.elapsed_time(stop) * 1e3 / replays


def main():
    results = []
    for case, requests, tokens, r in CASES:
        T = requests * tokens
        slots_per_set = [[k * ADAPTERS + (i * 5) % ADAPTERS for i in range(requests)] for k in range(SETS)]
        row_slot = [torch.tensor([s for s in slots for _ in range(tokens)], device=DEV) for slots in slots_per_set]
        state = {}
        for name, (k_in, widths) in MODULES.items():
            c, out = len(widths), sum(widths)
            state[name] = dict(
                a=torch.randn(SETS * ADAPTERS, c * r, k_in, device=DEV, dtype=DT) * 0.02,
                b=torch.randn(SETS * ADAPTERS, out, r, device=DEV, dtype=DT) * 0.02,
                x=torch.randn(T, k_in, device=DEV, dtype=DT),
                y=torch.randn(T, out, device=DEV, dtype=DT),
                widths=widths)
        rows_of = [[(rs == slot).nonzero().squeeze(1) for slot in sorted(set(rs.tolist()))] for rs in row_slot]
        slot_ids = [sorted(set(rs.tolist())) for rs in row_slot]

        def per_adapter(names):
            def run():
                for k in range(SETS):
                    for name in names:
                        st = state[name]
                        for slot, rows in zip(slot_ids[k], rows_of[k]):
                            u = st['x'].index_select(0, rows) @ st['a'][slot].t()
                            off = 0
                            parts = []
                            for j, w in enumerate(st['widths']):
                                parts.append(u[:, j * r:(j + 1) * r] @ st['b'][slot, off:off + w].t())
                                off += w
                            st['y'].index_add_(0, rows, torch.cat(parts, dim=1))
            return run

        def gathered(names):
            def run():
                for k in range(SETS):
                    for name in names:
                        st = state[name]
                        a_g = st['a'].index_select(0, row_slot[k])           # [T, c*r, in]
                        u = torch.bmm(a_g, st['x'].unsqueeze(2))            # [T, c*r, 1]
                        b_g = st['b'].index_select(0, row_slot[k])           # [T, out, r]
                        off = 0
                        parts = []
                        for j, w in enumerate(st['widths']):
                            parts.append(torch.bmm(b_g[:, off:off + w], u[:, j * r:(j + 1) * r]).squeeze(2))
                            off += w
                        st['y'].add_(torch.cat(parts, dim=1))
            return run

        replays = 20 if tokens == 1 else 3
        for label, maker in [('per-adapter matmul', per_adapter)] + ([('gathered bmm', gathered)] if tokens == 1 else []):
            entry = {'case': case, 'baseline': label}
            for name in MODULES:
                entry[name + 'Us'] = graph_us(maker([name]), replays) / SETS
            entry['layerUs'] = graph_us(maker(list(MODULES)), replays) / SETS
            results.append(entry)
            print(f"torch {case:18s} {label:20s} qkv {entry['qkvUs']:8.1f} us  gate_up {entry['gate_upUs']:8.1f} us  "
                  f"down {entry['downUs']:8.1f} us  LAYER {entry['layerUs']:8.1f} us", flush=True)
        del state
        torch.cuda.empty_cache()
    if len(sys.argv) > 1:
        with open(sys.argv[1], 'w') as f:
            json.dump({'device': torch.cuda.get_device_name(0), 'results': results}, f, indent=1)


if __name__ == '__main__':
    main()
