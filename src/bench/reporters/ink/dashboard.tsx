/**
 * The live bench dashboard (Ink). A pure view of a snapshot: finished runs stay above in <Static>, the running
 * one shows progress, in-flight requests, rolling TTFT/ITL percentiles, tokens/s and adapter slot occupancy.
 */
import { Box, Static, Text } from 'ink';
import type { RunSummary } from '../../metrics/records.js';
import { runLabel, type LiveRunState } from '../../runner/live-state.js';
import { itl, liveFigures, ms, rate } from '../format.js';

export interface DashboardSnapshot {
  title: string;
  outDir: string;
  finished: RunSummary[];
  live: LiveRunState | null;
  pending: string[];
  lastLog: string;
  /** performance.now() of the snapshot (rolling rates) */
  now: number;
  /** spinner frame counter */
  tick: number;
}

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export function progressBar(done: number, total: number, width = 28): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const full = Math.round(fraction * width);
  return `${'█'.repeat(full)}${'░'.repeat(width - full)}`;
}

export function slotBar(used: number | null, total: number | null): string {
  if (total === null || total <= 0) return 'n/a';
  const u = Math.max(0, Math.min(total, used ?? 0));
  const cells = Math.min(total, 32);
  const filled = Math.round((u / total) * cells);
  return `${'▰'.repeat(filled)}${'▱'.repeat(cells - filled)} ${used ?? '?'}/${total}`;
}

function FinishedRow({ summary }: { summary: RunSummary }) {
  const failed = summary.errors > 0;
  return (
    <Box>
      <Text color={failed ? 'yellow' : 'green'}>{failed ? '! ' : '✔ '}</Text>
      <Box width={Math.max(20, summary.run.length + 1)} flexShrink={0}>
        <Text bold>{summary.run}</Text>
      </Box>
      <Text>
        {summary.completed}/{summary.requests} · TTFT p50/p99 <Text color="cyan">{ms(summary.ttft.p50)}</Text>/{ms(summary.ttft.p99)} · ITL{' '}
        {itl(summary.itl.p50)} · E2E {ms(summary.e2e.p50)} · <Text color="magenta">{rate(summary.outputTokPerS)} tok/s</Text>
        {summary.errors > 0 ? <Text color="red"> · {summary.errors} errors</Text> : null}
        {summary.lora.adapterLoads !== null ? ` · ${summary.lora.adapterLoads} loads` : ''}
      </Text>
    </Box>
  );
}

function LivePanel({ live, now, tick }: { live: LiveRunState; now: number; tick: number }) {
  const f = liveFigures(live, now);
  const spinner = SPINNER[tick % SPINNER.length];
  return (
    <Box flexDirection="column" borderStyle="round" borderColor="cyan" paddingX={1}>
      <Box>
        <Text color="cyan">{spinner} </Text>
        <Text bold>{runLabel(live)}</Text>
        <Text dimColor>  {live.phase}</Text>
      </Box>
      <Box>
        <Text>
          <Text color="cyan">{progressBar(live.done, live.total)}</Text> {live.done}/{live.total} done · {live.inFlight} in flight
          {live.errors > 0 ? <Text color="red"> · {live.errors} errors</Text> : null}
        </Text>
      </Box>
      <Box>
        <Box width={16}>
          <Text dimColor>TTFT (rolling)</Text>
        </Box>
        <Text>
          p50 <Text color="green">{ms(f.ttftP50)}</Text> · p90 {ms(f.ttftP90)} · p99 <Text color="yellow">{ms(f.ttftP99)}</Text>
        </Text>
      </Box>
      <Box>
        <Box width={16}>
          <Text dimColor>ITL (rolling)</Text>
        </Box>
        <Text>
          p50 <Text color="green">{itl(f.itlP50)}</Text> · p99 <Text color="yellow">{itl(f.itlP99)}</Text>
        </Text>
      </Box>
      <Box>
        <Box width={16}>
          <Text dimColor>throughput</Text>
        </Box>
        <Text color="magenta">{rate(f.tokensPerS)} tok/s</Text>
        <Text dimColor>  ({live.outputTokens} tokens)</Text>
      </Box>
      <Box>
        <Box width={16}>
          <Text dimColor>adapter slots</Text>
        </Box>
        <Text>{slotBar(live.slotsUsed, live.slotsTotal)}</Text>
      </Box>
      {live.message ? (
        <Text dimColor wrap="truncate-end">
          {live.message}
        </Text>
      ) : null}
    </Box>
  );
}

export function Dashboard({ snapshot }: { snapshot: DashboardSnapshot }) {
  return (
    <Box flexDirection="column">
      <Static items={snapshot.finished}>{(summary) => <FinishedRow key={summary.run} summary={summary} />}</Static>
      <Box>
        <Text bold color="cyan">tslora bench </Text>
        <Text bold>{snapshot.title}</Text>
        <Text dimColor>  → {snapshot.outDir}</Text>
      </Box>
      {snapshot.live ? <LivePanel live={snapshot.live} now={snapshot.now} tick={snapshot.tick} /> : null}
      {snapshot.pending.length > 0 ? <Text dimColor>next: {snapshot.pending.join(', ')}</Text> : null}
      {snapshot.lastLog ? (
        <Text dimColor wrap="truncate-end">
          {snapshot.lastLog}
        </Text>
      ) : null}
    </Box>
  );
}
