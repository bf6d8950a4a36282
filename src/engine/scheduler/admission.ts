/**
 * The LoRA admission rule of spec c.6: may a request for adapter `x` join a running batch whose adapter set is
 * `running` (base counted as one id), given S slots and the set of pinned adapters? Pinned adapters reserve
 * their slots even while idle, so the non-pinned members of the new set must fit into the S − P other slots.
 */
export function canAdmitAdapter(
  x: string,
  running: ReadonlySet<string>,
  numSlots: number,
  pinned: ReadonlySet<string>,
): boolean {
  if (running.has(x)) return true;
  const size = running.size + 1;
  if (size > numSlots) return false;
  if (pinned.size === 0) return true;
  let pinnedInSet = pinned.has(x) ? 1 : 0;
  for (const id of running) if (pinned.has(id)) pinnedInSet++;
  const required = size - pinnedInSet;
  const vacancy = numSlots - pinned.size;
  return required <= vacancy;
}
