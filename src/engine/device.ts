/**
 * The device check the server runs before it loads any weights: `--device cuda` on a machine without a usable
 * CUDA addon or GPU is a usage error at once, not after the model has loaded. `auto` never fails (it falls back to
 * the CPU inside the engine), so it is not probed here.
 */
import { resolveDevice, type DeviceRequest } from '../binding/index.js';

export function checkRequestedDevice(requested: DeviceRequest): void {
  if (requested === 'cuda') resolveDevice(requested);
}
