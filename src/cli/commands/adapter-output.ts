/** Human-readable output of the `tslora adapter` commands (the --json output is the wire objects themselves). */
import type { AdapterListing, AdapterOperationResponse } from '../../protocol/adapters.js';

export function loadedLine(response: AdapterOperationResponse): string {
  const names = Object.keys(response.loaded_adapters).sort();
  return names.length === 0 ? 'No adapters loaded.' : `Loaded adapters (${names.length}): ${names.join(', ')}`;
}

export function formatListing(listing: AdapterListing): string {
  const lines: string[] = [];
  if (listing.base) {
    lines.push(`Base model: ${listing.base.id}${listing.base.max_model_len ? ` (context ${listing.base.max_model_len})` : ''}`);
  }
  if (listing.adapters.length === 0) {
    lines.push('No adapters loaded.');
    return lines.join('\n');
  }
  const rows = listing.adapters.map((a) => [a.name, a.pinned === null ? '?' : a.pinned ? 'yes' : 'no', a.path ?? '']);
  const header = ['NAME', 'PINNED', 'PATH'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const row of [header, ...rows]) {
    lines.push(row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  ').trimEnd());
  }
  return lines.join('\n');
}
