/**
 * startServer(config): loads the model, starts the engine worker, preloads the start-up adapters, and listens.
 * One log line per phase (an ora spinner on a TTY); close() drains in-flight requests, then stops the engine.
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TsloraError } from '../errors.js';
import type { ServeConfig, StartupAdapter } from '../config/serve-config.js';
import { Engine } from '../engine/engine.js';
import { AdapterManager } from '../engine/lora/adapter-manager.js';
import type { LoraTargetModule } from '../engine/model/types.js';
import { AdapterDirectory } from './adapter-directory.js';
import { isLoopbackHost } from './allowed-dirs.js';
import { OffLoopTokenizer } from './off-loop-tokenizer.js';
import { createRequestHandler } from './app.js';
import type { ServerContext } from './context.js';
import { GenerationService } from './generation/service.js';
import { ServerMetrics } from './metrics.js';
import { loadServerModel, readAdapterFile, type ReadAdapterFn, type ServerModel } from './model-port.js';
import { PhaseLogger } from './phase-log.js';
import { describeSamplingDefaults } from './sampling-defaults.js';
import { checkRequestedDevice } from '../engine/device.js';
import { checkModelAgainstConfig, demoExamples, inferLoraPool, listenEarly, type EarlyListener } from './startup.js';

export interface RunningServer {
  url: string;
  /** Graceful: stop accepting, let requests and slow readers finish (up to --shutdown-timeout), stop the engine. */
  close(): Promise<void>;
  /**
   * Now: cancel every request, drop connections, and stop the engine between two steps (terminating its thread
   * inside a native call would abort the process), then resolve; the caller exits.
   */
  abort(): Promise<void>;
}

/** How long abort() waits for the engine thread to reach the end of its current step. */
const ENGINE_STOP_TIMEOUT_MS = 10_000;

const KV_BLOCK_SIZE = 16;
/** A run-time adapter read that takes longer than this (a hung network mount, say) fails and frees its lock. */
const ADAPTER_READ_TIMEOUT_MS = 120_000;

function withTimeBound<T>(work: Promise<T>, path: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TsloraError('invalid_request', `reading the adapter at '${path}' took longer than ${ADAPTER_READ_TIMEOUT_MS / 1000} s; gave up`, { param: 'lora_path' })),
      ADAPTER_READ_TIMEOUT_MS,
    );
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function demoAdapters(demoDir: string): StartupAdapter[] {
  const dir = join(demoDir, 'adapters');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => statSync(join(dir, name)).isDirectory())
    .sort()
    .map((name) => ({ name, path: join(dir, name), pinned: false }));
}

/** Replaceable model loading (tests run the server on generated models); defaults to the real loaders. */
export interface ServerDependencies {
  loadModel?: (dir: string, tokenizerDir: string | null) => Promise<ServerModel>;
  readAdapter?: ReadAdapterFn;
}

/** Resolves true when `work` settles before the deadline (ms since the epoch), false when the deadline comes first. */
async function beforeDeadline(work: Promise<unknown>, deadline: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), Math.max(0, deadline - Date.now()))));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function allClosed(responses: Set<ServerResponse>): Promise<void> {
  while (responses.size > 0) await Promise.all([...responses].map((res) => new Promise<void>((r) => (res.closed ? r() : res.once('close', () => r())))));
}

/**
 * A response 'closes' once its last chunk is queued on the socket, which may still hold megabytes for a slow reader
 * (measured: 10.9 MB of a 15 MB stream); closing the connections then would cut that reader off. Waits until every
 * socket that carried a response has handed its buffer to the kernel (or was closed by the client).
 */
async function allFlushed(sockets: Set<Socket>): Promise<void> {
  for (;;) {
    const pending = [...sockets].filter((s) => !s.destroyed && s.writableLength > 0);
    if (pending.length === 0) return;
    await Promise.all(pending.map((s) => new Promise<void>((r) => {
      const done = () => { s.off('drain', done); s.off('close', done); r(); };
      s.on('drain', done);
      s.on('close', done);
    })));
  }
}

export async function startServer(inputConfig: ServeConfig, deps: ServerDependencies = {}): Promise<RunningServer> {
  // Fail fast: the device and the port are checked before the weights load.
  checkRequestedDevice(inputConfig.device);
  const listener = await listenEarly(inputConfig.host, inputConfig.port);
  try {
    return await startOnListener(inputConfig, deps, listener);
  } catch (error) {
    await listener.close();
    throw error;
  }
}

async function startOnListener(inputConfig: ServeConfig, deps: ServerDependencies, listener: EarlyListener): Promise<RunningServer> {
  const log = new PhaseLogger(inputConfig.logLevel);
  let config = inputConfig;
  const demo = config.modelPath === null;
  if (demo) {
    const demoDir = join(packageRoot, 'models', 'demo');
    if (!existsSync(join(demoDir, 'config.json'))) {
      throw new TsloraError('model_not_found', `the embedded demo model is missing from this installation (${demoDir}).`, { hint: 'Pass --model-path with a Hugging Face model directory.' });
    }
    const adapters = config.loraPaths.length > 0 ? config.loraPaths : demoAdapters(demoDir);
    config = { ...config, modelPath: demoDir, enableLora: adapters.length > 0 || config.enableLora, loraPaths: adapters };
  }
  const modelPath = config.modelPath!;
  if (config.loraResolverDir !== null && !(existsSync(config.loraResolverDir) && statSync(config.loraResolverDir).isDirectory())) {
    throw new TsloraError('usage', `--lora-resolver-dir ${config.loraResolverDir} is not a directory.`, { hint: 'Give the directory that holds one sub-directory per adapter name.', param: 'lora_resolver_dir' });
  }

  log.start(`loading model ${modelPath}`);
  const model = await log.wrap((deps.loadModel ?? loadServerModel)(modelPath, config.tokenizerPath));
  const contextLength = checkModelAgainstConfig(config, model.spec);
  log.done(`model loaded: ${model.spec.hfArchitecture}, ${model.spec.numLayers} layers, hidden ${model.spec.hiddenSize}, vocab ${model.spec.vocabSize}, context ${contextLength}`);

  const readAdapter = deps.readAdapter ?? readAdapterFile;
  let pool: { maxRank: number; targetModules: LoraTargetModule[] } = { maxRank: 0, targetModules: [] };
  const preread = new Map<string, Awaited<ReturnType<typeof readAdapter>>>();
  if (config.enableLora) {
    log.start(`reading ${config.loraPaths.length} start-up adapter${config.loraPaths.length === 1 ? '' : 's'}`);
    pool = await log.wrap(inferLoraPool(config, model.spec, readAdapter, preread));
    log.done(`LoRA pool: ${config.maxLorasPerBatch} slots, rank ${pool.maxRank}, modules ${pool.targetModules.join(', ')}, backend ${config.loraBackend}${config.loraPoolDtype !== 'f32' ? `, ${config.loraPoolDtype} storage on the CPU` : ''}`);
  }

  log.start('starting the engine');
  const engine = await log.wrap(
    Engine.start({
      spec: model.spec,
      weights: model.weights,
      device: config.device,
      dtype: config.dtype,
      numThreads: config.numThreads,
      tpSize: config.tpSize,
      cudaGraphMaxBs: config.cudaGraphMaxBs,
      disableCudaGraph: config.disableCudaGraph,
      overlapSchedule: !config.disableOverlapSchedule,
      contextLength,
      memFractionStatic: config.memFractionStatic,
      maxRunningRequests: config.maxRunningRequests,
      chunkedPrefillSize: config.chunkedPrefillSize,
      disablePrefixCache: config.disableRadixCache,
      kvBlockSize: KV_BLOCK_SIZE,
      kvCacheDtype: config.kvCacheDtype,
      lora: {
        enabled: config.enableLora,
        slots: config.maxLorasPerBatch,
        maxRank: pool.maxRank,
        targetModules: pool.targetModules,
        backend: config.loraBackend,
        chunkSize: config.maxLoraChunkSize,
        poolDtype: config.loraPoolDtype,
        evictionPolicy: config.loraEvictionPolicy,
        overlapLoading: config.enableLoraOverlapLoading,
        drainThresholdMs: config.loraDrainWaitThreshold * 1000,
      },
      eosTokenIds: model.eosTokenIds,
    }),
  );
  const info = engine.info;
  log.done(
    `engine on ${info.device} (${info.deviceName}${info.device === 'cpu' ? `, ${info.numThreads} threads${info.tpSize > 1 ? ` in ${info.tpSize} tensor-parallel ranks` : ''}` : `, ${info.computeDtype}`}): KV cache ${info.kvNumBlocks} blocks × ${info.kvBlockSize} tokens${info.device === 'cpu' && config.kvCacheDtype === 'bf16' ? ' in bf16' : ''}, up to ${info.maxRunningRequests} running requests`,
  );

  for (const warning of info.warnings ?? []) log.line(`tslora serve: warning: ${warning}`);
  if (info.device === 'cpu' && (config.cudaGraphMaxBs !== null || config.disableCudaGraph)) {
    log.line('tslora serve: warning: --cuda-graph-max-bs / --disable-cuda-graph have no effect on the CPU backend.');
  }
  const servedModelName = config.servedModelName ?? (demo ? 'demo' : modelPath);
  const metrics = new ServerMetrics(servedModelName);
  engine.onStepTimings = (steps) => metrics.engineSteps(steps);
  const adapters = new AdapterManager(
    engine,
    async (path, name) => {
      const cached = preread.get(path);
      if (cached) {
        preread.delete(path);
        return cached;
      }
      return withTimeBound(readAdapter(path, model.spec, { maxRank: pool.maxRank, targetModules: pool.targetModules, strict: config.loraStrictLoading }, name), path);
    },
    { loraEnabled: config.enableLora, numSlots: config.maxLorasPerBatch, maxLoadedLoras: config.maxLoadedLoras, evictionPolicy: config.loraEvictionPolicy },
    {
      onWarning: (m) => log.line(`warning: ${m}`),
      onLoaded: (name, ms) => metrics.adapterLoaded(name, ms / 1000),
    },
  );
  const cleanupEngine = async (error: unknown) => {
    await engine.close().catch(() => undefined);
    throw error;
  };
  if (config.enableLora && config.loraPaths.length > 0) {
    log.start(`loading adapters ${config.loraPaths.map((a) => a.name).join(', ')}`);
    try {
      for (const a of config.loraPaths) await adapters.load(a.name, a.path, a.pinned);
    } catch (error) {
      log.fail();
      await cleanupEngine(error);
    }
    log.done(`adapters loaded: ${config.loraPaths.map((a) => (a.pinned ? `${a.name} (pinned)` : a.name)).join(', ')}`);
  }

  const service = new GenerationService(
    engine,
    adapters,
    { contextLength, vocabSize: model.spec.vocabSize, maxRunningRequests: info.maxRunningRequests, maxQueuedRequests: config.maxQueuedRequests, eosTokenIds: model.eosTokenIds, kvCapacityTokens: info.kvNumBlocks * info.kvBlockSize },
    metrics,
    {
      withSpecial: { decode: (ids) => model.tokenizer.decode(ids, false), tokenText: model.tokenizer.tokenText },
      skipSpecial: { decode: (ids) => model.tokenizer.decode(ids, true), tokenText: model.tokenizer.tokenText },
    },
    config.randomSeed,
  );
  const adapterDirectory = config.loraResolverDir ? new AdapterDirectory(config.loraResolverDir) : null;
  service.adapterDirectory = adapterDirectory;
  if (config.logLevel === 'debug') {
    service.onSampleFinished = (run) => {
      const f = run.finish;
      const reason = f === null ? '?' : f.type === 'abort' ? `abort (${f.message})` : f.type;
      const ttft = run.firstTokenAtMs === null ? '-' : `${(run.firstTokenAtMs - run.arrivedAtMs).toFixed(1)}ms`;
      const total = ((run.finishedAtMs ?? performance.now()) - run.arrivedAtMs).toFixed(1);
      log.line(`tslora serve: request ${run.spec.clientId} adapter=${run.spec.adapterName ?? '(base)'} prompt=${run.spec.promptIds.length} cached=${run.cachedTokens} completion=${run.outputIds.length} ttft=${ttft} e2e=${total}ms finish=${reason}`);
    };
  }
  for (const message of model.samplingDefaultWarnings ?? []) log.line(`tslora serve: warning: generation_config.json: ${message}`);
  const samplingDefaults = model.samplingDefaults ?? {};
  const describedDefaults = describeSamplingDefaults(samplingDefaults);
  if (describedDefaults) log.line(`tslora serve: sampling defaults from the model's generation_config.json: ${describedDefaults}`);
  const offLoopTokenizer = deps.loadModel ? undefined : new OffLoopTokenizer(resolve(config.tokenizerPath ?? modelPath));
  const ctx: ServerContext = {
    config,
    modelPath,
    servedModelName,
    contextLength,
    spec: model.spec,
    tokenizer: model.tokenizer,
    // The thread loads the tokenizer files the model loader read; a test's own loader has none to share.
    offLoopTokenizer,
    renderChat: model.renderChat,
    samplingDefaults,
    engine,
    adapters,
    service,
    metrics,
    adapterDirectory,
    createdAtS: Math.floor(Date.now() / 1000),
    ready: false,
  };

  engine.onUnexpectedExit = () => {
    ctx.ready = false;
    log.line('tslora serve: error: the engine worker stopped unexpectedly; /health now fails.');
  };
  const url = listener.url;
  const server = listener.server;
  // Responses not yet fully handed to the OS: a drain waits for them (slow readers), up to --shutdown-timeout.
  const unfinished = new Set<ServerResponse>();
  const responseSockets = new Set<Socket>();
  server.on('request', (_req, res: ServerResponse) => {
    unfinished.add(res);
    res.on('close', () => unfinished.delete(res));
    const socket = res.socket;
    if (socket && !responseSockets.has(socket)) {
      responseSockets.add(socket);
      socket.once('close', () => responseSockets.delete(socket));
    }
  });
  // With --port 0 the OS picked the port: /get_server_info reports the one in use.
  ctx.config = Object.freeze({ ...ctx.config, port: listener.port });
  listener.serve(createRequestHandler(ctx));
  ctx.ready = true;
  if (!isLoopbackHost(config.host) && config.apiKey === null && config.loraAllowedDirs.length === 0) {
    log.line(
      `tslora serve: warning: --host ${config.host} is reachable from other machines and neither --api-key nor --lora-allowed-dirs is set: ` +
        'anyone who can reach the port can generate and make the server read any adapter path it can access (see docs/security.md).',
    );
  }
  if (demo) log.line(demoExamples(url, adapters.registry.list().map((e) => e.name), servedModelName, config.apiKey !== null));

  let closing: Promise<void> | null = null;
  return {
    url,
    close() {
      closing ??= (async () => {
        ctx.ready = false;
        const deadline = Date.now() + config.shutdownTimeout * 1000;
        // While requests finish, the listener stays open: new work and /health get 503 (a balancer moves on).
        if (!(await beforeDeadline(service.drain(), deadline))) service.cancelAll('the server is shutting down (--shutdown-timeout reached)');
        // Every response was ended; wait until slow readers have received what is buffered for them. Only then close
        // the listener: since Node 19 server.close() also destroys connections it counts as idle, and a connection
        // whose response has ended counts as idle while megabytes of it still wait in the socket's buffer.
        await beforeDeadline(allClosed(unfinished), deadline);
        await beforeDeadline(allFlushed(responseSockets), deadline);
        const closed = new Promise<void>((r) => server.close(() => r()));
        server.closeAllConnections();
        await closed;
        await engine.close();
        await offLoopTokenizer?.close();
      })();
      return closing;
    },
    async abort() {
      ctx.ready = false;
      service.cancelAll('the server is stopping now');
      server.closeAllConnections();
      await beforeDeadline(engine.close().catch(() => undefined), Date.now() + ENGINE_STOP_TIMEOUT_MS);
    },
  };
}
