/**
 * The compute dtype of the runner from --dtype, the checkpoint's dtype and the device (spec a.5, SGLang's rule):
 * the CPU backend always computes in f32; on CUDA `auto` keeps a bf16 checkpoint in bf16 and serves f16 and f32
 * checkpoints in f16. The CUDA engine computes only in bf16/f16, so an explicit float32 there falls back to bf16
 * (the same exponent range as f32) with a warning instead of failing.
 */
import type { DType } from '../model/types.js';

export type RequestedDtype = 'auto' | 'half' | 'float16' | 'bfloat16' | 'float' | 'float32';
export type ComputeDtype = 'f32' | 'bf16' | 'f16';

export interface DtypeChoice {
  dtype: ComputeDtype;
  /** A start-up warning when the request could not be honoured as given, else null. */
  warning: string | null;
}

export function chooseComputeDtype(requested: RequestedDtype, checkpointDtype: DType, device: 'cpu' | 'cuda'): DtypeChoice {
  if (device === 'cpu') return { dtype: 'f32', warning: null };
  switch (requested) {
    case 'half':
    case 'float16':
      return { dtype: 'f16', warning: null };
    case 'bfloat16':
      return { dtype: 'bf16', warning: null };
    case 'float':
    case 'float32':
      return {
        dtype: 'bf16',
        warning: `--dtype ${requested}: the CUDA engine computes in bfloat16 or float16, not float32; serving in bfloat16 (same range as float32, fewer mantissa bits). Pass --dtype bfloat16 (or float16) to silence this, or --device cpu for float32.`,
      };
    default:
      return { dtype: checkpointDtype === 'bf16' ? 'bf16' : 'f16', warning: null };
  }
}
