/**
 * Start-up checks: the port and the device before anything loads (fail fast), the checks that need the model,
 * LoRA pool inference, and the demo's example requests.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TsloraError } from '../errors.js';
import type { ServeConfig } from '../config/serve-config.js';
import type { AdapterSpec, LoraTargetModule, ModelSpec } from '../engine/model/types.js';
import { checkTensorParallelModel } from '../engine/model/tensor-parallel.js';
import type { ReadAdapterFn } from './model-port.js';

export const ALL_TARGET_MODULES: LoraTargetModule[] = ['qkv_proj', 'o_proj', 'gate_up_proj', 'down_proj', 'embed_tokens', 'lm_head'];

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** The HTTP server bound before the model loads; requests get 503 until `serve` installs the real handler. */
export interface EarlyListener {
  server: Server;
  url: string;
  port: number;
  serve(handler: RequestHandler): void;
  close(): Promise<void>;
}

/**
 * Binds host:port first, so that a taken port fails in milliseconds instead of after the model has loaded. The
 * socket is unref'd until `serve`: a start-up that fails later does not keep the process alive through it.
 */
export async function listenEarly(host: string, port: number): Promise<EarlyListener> {
  let handler: RequestHandler = (_req, res) => {
    res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5' });
    res.end(JSON.stringify({ error: { message: 'the server is starting (loading the model); retry shortly', code: 503 } }));
  };
  const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => handler(req, res));
  try {
    await new Promise<void>((resolveListen, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolveListen());
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const taken = e.code === 'EADDRINUSE' ? ' (another process is listening there)' : '';
    throw new TsloraError('usage', `cannot listen on ${host}:${port}${taken}: ${e.message}. Nothing was loaded.`, {
      hint: 'Choose another --port (0 picks a free one), or stop the other server.',
      param: 'port',
    });
  }
  server.unref();
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shownHost}:${address.port}`,
    port: address.port,
    serve(next) {
      handler = next;
      server.ref();
    },
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeIdleConnections();
    }),
  };
}

/** Returns the effective context length; throws usage errors for flags the model cannot honour. */
export function checkModelAgainstConfig(config: ServeConfig, spec: ModelSpec): number {
  const max = spec.maxPositionEmbeddings;
  if (config.contextLength !== null && config.contextLength > max) {
    throw new TsloraError('usage', `--context-length ${config.contextLength} exceeds the model's max_position_embeddings (${max}).`, {
      hint: `Use --context-length ${max} or less.`,
      param: 'contextLength',
    });
  }
  checkTensorParallelModel(spec, config.tpSize);
  return config.contextLength ?? max;
}

function canonical(modules: Iterable<LoraTargetModule>): LoraTargetModule[] {
  const set = new Set(modules);
  return ALL_TARGET_MODULES.filter((m) => set.has(m));
}

/**
 * a.4: rank R and target set of the device pool, from the flags or the start-up adapters. Each start-up adapter is
 * read once here (results kept in `preread` by path) and checked against explicit flags.
 */
export async function inferLoraPool(
  config: ServeConfig,
  spec: ModelSpec,
  read: ReadAdapterFn,
  preread: Map<string, { adapter: AdapterSpec; warnings: string[] }>,
): Promise<{ maxRank: number; targetModules: LoraTargetModule[] }> {
  const explicitModules = config.loraTargetModules === 'all' ? ALL_TARGET_MODULES : config.loraTargetModules;
  const specs: AdapterSpec[] = [];
  for (const a of config.loraPaths) {
    const result = await read(a.path, spec, { maxRank: config.maxLoraRank, targetModules: explicitModules, strict: config.loraStrictLoading }, a.name);
    preread.set(a.path, result);
    specs.push(result.adapter);
  }
  const maxRank = config.maxLoraRank ?? Math.max(1, ...specs.map((s) => s.rank));
  const targetModules = explicitModules ? canonical(explicitModules) : canonical(specs.flatMap((s) => s.targetModules));
  if (targetModules.length === 0) {
    throw new TsloraError('usage', 'the LoRA pool has no target modules.', { hint: 'Give --lora-target-modules (or all).', param: 'loraTargetModules' });
  }
  return { maxRank, targetModules };
}

const DEMO_PROMPTS: Record<string, string> = {
  reverse: 'hello world=',
  spell: '4096=',
  add: '12+30=',
  upper: 'make me loud=',
  caesar: 'attack at dawn=',
  last_word: 'the quick brown fox=',
};

/** Prefers the add, caesar and last_word trio (three visibly different tasks), else the first three adapters. */
function demoTrio(adapterNames: string[]): string[] {
  const preferred = ['add', 'caesar', 'last_word'];
  return preferred.every((n) => adapterNames.includes(n)) ? preferred : adapterNames.slice(0, 3);
}

/** A shell word in single quotes (prompts and URLs are pasted into a POSIX shell). */
function shellWord(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

const COUNT_WORDS = ['no', 'one', 'two', 'three'];

/**
 * How the user started this server, so that the printed commands work as pasted: `npx tslora` from a checkout or
 * a local install (npx sets npm_command=exec), else the bare `tslora` that `npm i -g` or `npm link` puts on PATH.
 */
export function cliCommandName(env: NodeJS.ProcessEnv = process.env): string {
  return env.npm_command === 'exec' ? 'npx tslora' : 'tslora';
}

/**
 * Ready-to-paste requests for the demo model: ONE /generate batch answered by up to three adapters, as curl and as
 * the equivalent `tslora generate` line, then a /v1/completions call and the adapter list.
 */
export function demoExamples(url: string, adapterNames: string[], servedModelName: string, needsKey: boolean, cli = cliCommandName()): string {
  const three = demoTrio(adapterNames);
  const answeredBy = three.length === 1 ? 'one adapter' : `${COUNT_WORDS[three.length]} adapters`;
  const prompts = three.map((n) => DEMO_PROMPTS[n] ?? 'hello=');
  const auth = needsKey ? ' -H "Authorization: Bearer $KEY"' : '';
  const batch = JSON.stringify({ text: prompts, lora_path: three, sampling_params: { max_new_tokens: 24, temperature: 0 } });
  const first = three[0];
  const chat = JSON.stringify({ model: `${servedModelName}:${first ?? ''}`, prompt: DEMO_PROMPTS[first] ?? 'hello=', max_tokens: 24, temperature: 0 });
  const cliPrompts = prompts.map((p) => `"${p.replace(/(["\\$`])/g, '\\$1')}"`).join(' ');
  const cliLoras = three.map((n) => `--lora ${shellWord(n)}`).join(' ');
  const cliKey = needsKey ? ' --api-key "$KEY"' : '';
  return [
    '',
    `Demo model ready with adapters: ${adapterNames.join(', ') || '(none)'}. Try one batch answered by ${answeredBy}:`,
    `  curl -s ${url}/generate -H 'Content-Type: application/json'${auth} -d '${batch}'`,
    `  ${cli} generate ${cliPrompts} ${cliLoras} --url ${url}${cliKey}`,
    ...(needsKey ? ['(in a shell where KEY holds the --api-key value)'] : []),
    'or the OpenAI-compatible API, and the adapter list:',
    `  curl -s ${url}/v1/completions -H 'Content-Type: application/json'${auth} -d '${chat}'`,
    `  ${cli} adapter list --url ${url}${cliKey}`,
    '',
  ].join('\n');
}
