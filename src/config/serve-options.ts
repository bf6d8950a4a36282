/**
 * The option table of `tslora serve`: SGLang's flag names and defaults (spec a.1, a.5). This one list drives the
 * commander flags, TSLORA_* environment variables, the --config JSON file, --help, the man page and the README.
 */
import { defineOptions } from './option-names.js';

export const SERVE_GROUPS = {
  config: 'Configuration',
  model: 'Model',
  server: 'HTTP server',
  runtime: 'Runtime and memory',
  streaming: 'Streaming and observability',
  lora: 'LoRA',
} as const;

export const LORA_TARGET_MODULE_HELP =
  'q_proj k_proj v_proj o_proj gate_proj up_proj down_proj qkv_proj gate_up_proj embed_tokens lm_head, or all';

export const serveOptions = defineOptions([
  // configuration
  {
    key: 'config',
    type: 'string',
    valueName: 'FILE',
    group: SERVE_GROUPS.config,
    help: 'Read options from a JSON file (keys: camelCase keys or flag names).',
    details:
      'Precedence: defaults < config file < TSLORA_* environment variables < command-line flags. Unknown keys are ' +
      'an error. Relative paths in the file are resolved against the file\'s directory. `loraPaths` may also be an ' +
      'object `{"name": "path"}` or a list of `{"lora_name", "lora_path", "pinned"}` objects.',
  },

  // model
  {
    key: 'modelPath',
    aliases: ['model'],
    type: 'string',
    valueName: 'DIR',
    group: SERVE_GROUPS.model,
    help: 'Hugging Face model directory (config.json, *.safetensors, tokenizer.json). Default: the embedded demo model.',
    details:
      'Without it, tslora serves the demo model that ships in models/demo, together with its task adapters, on the CPU.',
  },
  { key: 'tokenizerPath', type: 'string', valueName: 'DIR', group: SERVE_GROUPS.model, help: 'Tokenizer directory, if not the model directory.' },
  {
    key: 'servedModelName',
    type: 'string',
    valueName: 'NAME',
    group: SERVE_GROUPS.model,
    help: "Model name in /v1/models and the base part of 'model:adapter' (no ':'). Default: derived from the model path.",
  },
  {
    key: 'contextLength',
    type: 'int',
    valueName: 'N',
    group: SERVE_GROUPS.model,
    help: "Maximum prompt + output tokens per request. Default: the model's max_position_embeddings.",
  },
  {
    key: 'dtype', valueName: 'DTYPE',
    type: 'enum',
    choices: ['auto', 'half', 'float16', 'bfloat16', 'float', 'float32'],
    defaultValue: 'auto',
    group: SERVE_GROUPS.model,
    help: 'Weight and activation dtype on the GPU (the CPU backend computes in float32).',
    details: "`auto` keeps a bf16/fp16 checkpoint's dtype on the GPU and serves float32 checkpoints as float16. The CUDA engine has no float32 path: `float`/`float32` there serves in bfloat16, with a start-up warning.",
  },
  {
    key: 'device', valueName: 'DEVICE',
    type: 'enum',
    choices: ['auto', 'cpu', 'cuda'],
    defaultValue: 'auto',
    group: SERVE_GROUPS.model,
    help: 'Where to run: cuda when a GPU and the CUDA build are present (auto), else cpu.',
  },

  // HTTP server
  { key: 'host', type: 'string', valueName: 'HOST', defaultValue: '127.0.0.1', group: SERVE_GROUPS.server, help: 'Address to listen on.' },
  { key: 'port', type: 'int', valueName: 'PORT', defaultValue: 30000, group: SERVE_GROUPS.server, help: 'Port to listen on; 0 picks a free port (the URL is printed).' },
  {
    key: 'replicas',
    type: 'int',
    valueName: 'N',
    defaultValue: 1,
    group: SERVE_GROUPS.server,
    help: 'Start N server processes on ports PORT..PORT+N-1 (each loads the model), for a proxy in front of them.',
    details:
      'Each replica is a full `tslora serve` with the same options. SIGINT/SIGTERM go to every replica; a replica that ' +
      'dies is reported and the others keep serving. docs/deploy.md ships an HAProxy configuration that hashes the ' +
      "request's adapter so that each adapter stays on one replica.",
  },
  {
    key: 'apiKey',
    type: 'string',
    valueName: 'KEY',
    group: SERVE_GROUPS.server,
    help: 'Require "Authorization: Bearer KEY" on every route except /health.',
  },
  {
    key: 'maxQueuedRequests',
    type: 'int',
    valueName: 'N',
    defaultValue: 1024,
    group: SERVE_GROUPS.server,
    help: 'Bound on waiting requests; beyond it new requests get 503 with Retry-After.',
  },
  {
    key: 'shutdownTimeout',
    type: 'float',
    valueName: 'SECONDS',
    defaultValue: 30,
    group: SERVE_GROUPS.server,
    help: 'On SIGTERM/SIGINT, how long to wait for running requests and slow readers before closing their connections.',
  },

  // runtime and memory
  {
    key: 'tpSize',
    aliases: ['tp', 'tensor-parallel-size'],
    type: 'int',
    valueName: 'N',
    defaultValue: 1,
    group: SERVE_GROUPS.runtime,
    help: 'Tensor-parallel ranks: 1, 2 or 4 CPU thread groups (multi-GPU is not in this build); heads and intermediate size must divide by it.',
  },
  {
    key: 'memFractionStatic',
    type: 'float',
    valueName: 'FRACTION',
    group: SERVE_GROUPS.runtime,
    help: 'Fraction of device memory for weights, the LoRA pool and the KV pool, in (0, 1). Default: backend choice.',
  },
  {
    key: 'kvCacheDtype', valueName: 'DTYPE',
    type: 'enum',
    choices: ['auto', 'bf16'],
    defaultValue: 'auto',
    group: SERVE_GROUPS.runtime,
    help: 'KV cache storage. auto: the compute dtype (float32 on the CPU). bf16: half the KV memory on the CPU (attention accumulates in float32).',
    details:
      'On the CPU, bf16 halves the KV cache, so the same memory holds twice the token positions, and halves the ' +
      'cache reads of attention; keys and values are rounded to bf16 when written (on the PyTorch + PEFT fixtures ' +
      'the logits move by 3e-3 to 1.4e-2 relative L2, which is why float32 stays the default). The CUDA backend ' +
      'keeps its KV cache in the compute dtype (bf16 or fp16) and ignores this flag.',
  },
  { key: 'maxRunningRequests', type: 'int', valueName: 'N', group: SERVE_GROUPS.runtime, help: 'Cap on requests in the running batch. Default: derived from KV capacity.' },
  {
    key: 'chunkedPrefillSize',
    type: 'int',
    valueName: 'N',
    defaultValue: 512,
    group: SERVE_GROUPS.runtime,
    help: 'Maximum prompt tokens per prefill step; longer prompts are split; -1 disables chunking.',
    details: 'SGLang chooses it from GPU memory; tslora defaults to 512, which suits the CPU backend and small GPUs.',
  },
  { key: 'cudaGraphMaxBs', type: 'int', valueName: 'N', group: SERVE_GROUPS.runtime, help: 'Largest decode batch captured in a CUDA graph (GPU only). Default: automatic.' },
  { key: 'disableCudaGraph', type: 'boolean', defaultValue: false, group: SERVE_GROUPS.runtime, help: 'Run every step eagerly, without CUDA graphs (GPU only).' },
  {
    key: 'disableOverlapSchedule',
    type: 'boolean',
    defaultValue: false,
    group: SERVE_GROUPS.runtime,
    help: 'Run each step only after the previous one was processed, instead of planning and launching it while the previous one computes.',
    details:
      "SGLang's flag. Overlap scheduling hides the engine's host work (admission, step planning, result handling) behind the forward step; steps with repetition/frequency/presence penalties run synchronously either way.",
  },
  { key: 'disableRadixCache', type: 'boolean', defaultValue: false, group: SERVE_GROUPS.runtime, help: 'Turn off the prefix cache (keyed by adapter and tokens).' },
  { key: 'numThreads', type: 'int', valueName: 'N', defaultValue: 0, group: SERVE_GROUPS.runtime, help: 'CPU backend worker threads; 0 = all cores.' },
  { key: 'randomSeed', type: 'int', valueName: 'SEED', group: SERVE_GROUPS.runtime, help: 'Seed for sampling. Default: random. Requests may pass their own seed.' },

  // streaming and observability
  { key: 'streamInterval', type: 'int', valueName: 'N', defaultValue: 1, group: SERVE_GROUPS.streaming, help: 'Tokens per streamed event.' },
  {
    key: 'incrementalStreamingOutput',
    type: 'boolean',
    defaultValue: false,
    group: SERVE_GROUPS.streaming,
    help: 'Stream only new text on /generate (default: cumulative text, like SGLang).',
  },
  {
    key: 'maxUnreadStreamBytes',
    type: 'int',
    valueName: 'BYTES',
    defaultValue: 16 * 1024 * 1024,
    group: SERVE_GROUPS.streaming,
    help: 'A streaming client that leaves more than this many bytes unread is disconnected (metric tslora_stream_clients_dropped_total).',
  },
  { key: 'enableMetrics', type: 'boolean', defaultValue: false, group: SERVE_GROUPS.streaming, help: 'Serve Prometheus metrics on /metrics.' },
  { key: 'logLevel', valueName: 'LEVEL', type: 'enum', choices: ['debug', 'info', 'warning', 'error'], defaultValue: 'info', group: SERVE_GROUPS.streaming, help: 'Log verbosity.' },

  // LoRA (spec a.1)
  {
    key: 'enableLora',
    type: 'boolean',
    group: SERVE_GROUPS.lora,
    help: 'Turn LoRA serving on. Unset: on when --lora-paths is given. --no-enable-lora ignores --lora-paths.',
  },
  {
    key: 'loraPaths',
    type: 'list',
    valueName: 'ADAPTER...',
    group: SERVE_GROUPS.lora,
    help: 'Adapters to load at start-up: PATH, NAME=PATH or {"lora_name":..,"lora_path":..,"pinned":true}.',
    details:
      'Space-separated; the forms may be mixed. NAME=PATH splits at the first `=` (a path containing `=` needs the ' +
      'JSON form). In TSLORA_LORA_PATHS the entries are separated by spaces; a value starting with `[` is read as a ' +
      'JSON list.',
  },
  {
    key: 'maxLoraRank',
    type: 'int',
    valueName: 'R',
    group: SERVE_GROUPS.lora,
    help: 'Rank capacity of every adapter slot. Default: the largest start-up adapter rank.',
    details: 'Set it, together with --lora-target-modules, whenever adapters will be loaded at run time: they must fit the pool.',
  },
  {
    key: 'loraTargetModules',
    type: 'list',
    valueName: 'MODULE...',
    group: SERVE_GROUPS.lora,
    help: 'Projections the adapter pool is built for, or all. Default: the union over start-up adapters.',
    details:
      `Names: ${LORA_TARGET_MODULE_HELP}. q/k/v_proj fold into qkv_proj and gate/up_proj into gate_up_proj. ` +
      '`all` means every linear projection plus embed_tokens and lm_head. Set it, together with --max-lora-rank, ' +
      'whenever adapters will be loaded at run time.',
  },
  {
    key: 'maxLorasPerBatch',
    type: 'int',
    valueName: 'S',
    defaultValue: 8,
    group: SERVE_GROUPS.lora,
    help: 'Adapter slots on the device = distinct adapters per batch; base requests occupy one.',
  },
  {
    key: 'maxLoadedLoras',
    type: 'int',
    valueName: 'N',
    group: SERVE_GROUPS.lora,
    help: 'Cap on adapters held in host memory (at least --max-loras-per-batch). Default: unlimited.',
  },
  {
    key: 'loraEvictionPolicy', valueName: 'POLICY',
    type: 'enum',
    choices: ['lru', 'fifo'],
    defaultValue: 'lru',
    group: SERVE_GROUPS.lora,
    help: 'Which unpinned adapter leaves a slot (and the host tier) when room is needed.',
  },
  {
    key: 'loraBackend', valueName: 'BACKEND',
    type: 'enum',
    choices: ['triton', 'csgmv'],
    defaultValue: 'csgmv',
    group: SERVE_GROUPS.lora,
    help: 'LoRA kernel strategy: csgmv (chunked SGMV) or triton (segments per request).',
  },
  {
    key: 'loraPoolDtype', valueName: 'DTYPE',
    type: 'enum',
    choices: ['f32', 'bf16', 'int8'],
    defaultValue: 'f32',
    group: SERVE_GROUPS.lora,
    help:
      'CPU backend (CUDA ignores it): storage of the LoRA slot pool. bf16 halves its memory and reads (fp32 accumulation) but rounds fp32 adapters; ' +
      'int8 quarters them by quantizing every adapter (one fp32 scale per lora_A row and per output feature, each weight within half a step of 1/127 of its row\'s largest): ' +
      'against PyTorch + PEFT, logits move by up to ~6e-2 relative L2 on the test fixtures (bf16: ~2e-2) and some greedy outputs change.',
  },
  {
    key: 'maxLoraChunkSize',
    type: 'int',
    valueName: 'C',
    defaultValue: 16,
    group: SERVE_GROUPS.lora,
    help: 'Upper bound of the csgmv chunk size: 16, 32, 64 or 128.',
  },
  {
    key: 'enableLoraOverlapLoading',
    type: 'boolean',
    defaultValue: false,
    group: SERVE_GROUPS.lora,
    help: 'Copy adapters to the device while other requests run; needs --max-loaded-loras <= 2 x --max-loras-per-batch.',
  },
  {
    key: 'loraDrainWaitThreshold',
    type: 'float',
    valueName: 'SECONDS',
    defaultValue: 0,
    group: SERVE_GROUPS.lora,
    help: 'Drain a running adapter when a waiting one has waited this long; 0 = off.',
  },
  {
    key: 'loraAllowedDirs',
    type: 'list',
    valueName: 'DIR...',
    group: SERVE_GROUPS.lora,
    help: 'Directories run-time adapter loads may read from (after resolving symlinks); other paths get 403 forbidden_path.',
    details:
      'Unset, any path the server process can read may be loaded through POST /load_lora_adapter. Start-up adapters ' +
      '(--lora-paths) are not checked. See docs/security.md.',
  },
  {
    key: 'loraStrictLoading',
    type: 'boolean',
    defaultValue: false,
    group: SERVE_GROUPS.lora,
    help: 'Adapter tensors that match no target module are an error instead of a warning.',
  },
  {
    key: 'loraResolverDir',
    type: 'string',
    valueName: 'DIR',
    group: SERVE_GROUPS.lora,
    help: 'Load an adapter on first use from DIR/<name> when a request names one that is not loaded.',
    details:
      "Like vLLM's filesystem LoRA resolver: a request for adapter `name` that is neither loaded nor known loads " +
      '`DIR/name` (a PEFT directory; names are letters, digits, `.`, `_`, `-`, not starting with `.`; the resolved ' +
      'path must stay inside DIR). Lets a router send any adapter to any replica that shares the directory.',
  },
]);

/** Keys of the LoRA options other than the two that switch LoRA on: inert (with a warning) while LoRA is off. */
export const LORA_TUNING_KEYS: readonly string[] = serveOptions
  .filter((o) => o.group === SERVE_GROUPS.lora && o.key !== 'enableLora' && o.key !== 'loraPaths')
  .map((o) => o.key);
