/**
 * Generates the man pages (man/tslora.1 with the generate command, tslora-serve.1, tslora-adapter.1,
 * tslora-bench.1) and the flag reference
 * of README.md (between <!-- flags:begin --> and <!-- flags:end -->) from the option tables, so docs cannot drift
 * from the CLI. Reproducible: the date is fixed here and the version comes from package.json.
 *
 * Usage: node --import tsx scripts/gen-docs.ts [--out DIR]   (default DIR: the repository; `npm run man`)
 * With --out, writes DIR/man/*.1 and DIR/README.md and leaves the repository alone (used by the drift test).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { adapterLoadOptions, adapterOptions, benchOptions, generateOptions, serveOptions, synthOptions } from '../src/config/index.js';
import type { OptionSpec } from '../src/config/option-types.js';
import { EXIT_CODES } from '../src/errors.js';

/** Fixed so that regenerating gives byte-identical pages; bump it when the pages change materially. */
const DOCS_DATE = '2026-11-29';
const MANUAL = 'tslora manual';
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const FLAGS_BEGIN = '<!-- flags:begin -->';
export const FLAGS_END = '<!-- flags:end -->';

function term(spec: OptionSpec): string {
  const flag = spec.negatable ? `--[no-]${spec.flag}` : `--${spec.flag}`;
  return spec.type === 'boolean' ? flag : `${flag} ${spec.valueName ?? 'VALUE'}`;
}

function facts(spec: OptionSpec): string[] {
  const out: string[] = [];
  if (spec.aliases?.length) out.push(`Aliases: ${spec.aliases.map((a) => `--${a}`).join(', ')}.`);
  if (spec.type === 'enum' && spec.choices) out.push(`One of: ${spec.choices.join(', ')}.`);
  if (spec.repeatable) out.push('Repeatable.');
  if (spec.defaultValue !== undefined) out.push(`Default: ${String(spec.defaultValue)}.`);
  if (spec.env) out.push(`Environment: ${spec.env}.`);
  return out;
}

/** Groups a table by heading, in order of first appearance. */
function groups(table: readonly OptionSpec[]): Map<string, OptionSpec[]> {
  const result = new Map<string, OptionSpec[]>();
  for (const spec of table) result.set(spec.group, [...(result.get(spec.group) ?? []), spec]);
  return result;
}

function manOptions(table: readonly OptionSpec[]): string {
  const parts: string[] = [];
  for (const [group, specs] of groups(table)) {
    parts.push(`### ${group}\n`);
    for (const spec of specs) {
      const text = [spec.help, spec.details, ...facts(spec)].filter(Boolean).join(' ');
      parts.push(`* \`${term(spec)}\`:\\\n  ${text.replace(/\n/g, ' ')}\n`);
    }
  }
  return parts.join('\n');
}

const EXIT_STATUS = `## EXIT STATUS

* ${EXIT_CODES.ok}: success.
* ${EXIT_CODES.failure}: an unexpected failure (see the message).
* ${EXIT_CODES.usage}: usage error: a bad flag, environment variable or config-file value; nothing was started.
* ${EXIT_CODES.unreachable}: the server could not be reached or did not answer in time.
* ${EXIT_CODES.notLoaded}: the adapter is not loaded, or the server found no adapter at PATH (load).
* ${EXIT_CODES.rejected}: the server rejected the request (its reason and error_code are printed).
* ${EXIT_CODES.unauthorized}: the server refused the API key.
* ${EXIT_CODES.checkFailed}: a \`tslora bench --check\` assertion failed.
`;

function tsloraPage(): string {
  return `# tslora(1) -- serve one base LLM with many LoRA adapters

## SYNOPSIS

\`tslora serve\` [OPTIONS]\\
\`tslora adapter\` load|unload|pin|unpin|list [ARGS] [OPTIONS]\\
\`tslora generate\` [PROMPT...] [--lora NAME ...] [OPTIONS]\\
\`tslora bench\` [CONFIG] [OPTIONS]\\
\`tslora synth\` model|adapters [OPTIONS]\\
\`tslora\` --help | --version

## DESCRIPTION

tslora serves one base model (Llama, Mistral, Qwen2, Qwen3; Hugging Face layout) together with many LoRA
adapters (PEFT layout), mixing requests for different adapters in every batch, the way S-LoRA, Punica and SGLang
do. Its flags, HTTP API and error categories follow SGLang, so launch commands and clients carry over.

## COMMANDS

* \`serve\`:
  Start the engine and its HTTP server (native /generate, OpenAI-compatible /v1/*, adapter admin). Without
  --model-path it serves the embedded demo model and its adapters on the CPU. See tslora-serve(1).

* \`adapter\`:
  Load, unload, pin, unpin and list adapters on a running server. See tslora-adapter(1).

* \`generate\`:
  Send prompts to a running server as one \`POST /generate\` batch, each prompt with its own adapter. See
  GENERATE below.

* \`bench\`:
  Run latency experiments against servers it launches. See tslora-bench(1).

* \`synth\`:
  Write random-weight models and PEFT adapters for benchmarks. See tslora-bench(1).

## CONFIGURATION

Every option of \`serve\` can come from a default, a JSON file given with --config, a TSLORA_* environment
variable (TSLORA_ plus the flag in upper snake case) or the command line; later sources win in that order.

## GENERATE

\`tslora generate\` [PROMPT...] [--lora NAME ...] [OPTIONS]

Sends the prompts (the arguments, or one per line of stdin when none are given and stdin is not a terminal) to a
running server as ONE \`POST /generate\` batch. The i-th --lora applies to the i-th prompt; a single --lora
applies to every prompt; \`base\` or \`-\` means the base model; any other number of --lora is a usage error.
Greedy decoding (--temperature 0) is the default. The output is one line per prompt, \`[adapter] prompt → text\`;
--json prints the server's response array instead. --stream prints the text of a single prompt as it is
generated; with several prompts, each prompt's line is printed as soon as its answer is complete (with --json,
each server-sent event is one JSON line).

${manOptions([...generateOptions, ...adapterOptions])}
Examples:

\`tslora generate "12+30=" "attack at dawn=" "the quick brown fox=" --lora add --lora caesar --lora last_word\`\\
\`printf '4096=\\n17=\\n' | tslora generate --lora spell --json\`\\
\`tslora generate "hello world=" --lora reverse --stream --url http://gpu-box:30000\`

${EXIT_STATUS}
## SEE ALSO

tslora-serve(1), tslora-adapter(1), tslora-bench(1)
`;
}

const VALIDATION = [
  '--max-loras-per-batch must be at least 1.',
  '--lora-paths without --enable-lora turns LoRA on (logged).',
  '--lora-paths with --no-enable-lora are ignored (logged); the LoRA rules below then do not run, and LoRA flags only warn that they are inert.',
  '--enable-lora-overlap-loading needs --max-loaded-loras set and at most 2 × --max-loras-per-batch.',
  'A --lora-paths entry that looks like JSON must be an object with "lora_name" and "lora_path" (and optionally "pinned").',
  'A NAME=PATH entry needs a non-empty name and path; names must be unique.',
  "'all' must be the only value of --lora-target-modules.",
  'Target module names must be known (q_proj k_proj v_proj o_proj gate_proj up_proj down_proj qkv_proj gate_up_proj embed_tokens lm_head, or all).',
  'Without --lora-paths, both --max-lora-rank and --lora-target-modules are required (except for the embedded demo model, whose adapters are the start-up adapters).',
  '--max-loaded-loras must be at least --max-loras-per-batch.',
  '--lora-paths may not list more adapters than --max-loaded-loras.',
  '--max-lora-chunk-size must be 16, 32, 64 or 128.',
  '--lora-drain-wait-threshold must be at least 0.',
  'At most --max-loras-per-batch − 1 start-up adapters may be pinned.',
  "--served-model-name must not contain ':' (checked whether or not LoRA is on).",
];

function servePage(): string {
  return `# tslora-serve(1) -- serve a base model with many LoRA adapters

## SYNOPSIS

\`tslora serve\` [OPTIONS]

## DESCRIPTION

Loads the base model and the start-up adapters and serves them over HTTP: \`POST /generate\` (SGLang's native
API), \`POST /v1/completions\`, \`POST /v1/chat/completions\` and \`GET /v1/models\` (OpenAI-compatible; pick an
adapter with \`model: "base:adapter"\`), and \`POST /load_lora_adapter\`, \`/unload_lora_adapter\`,
\`/pin_lora_adapter\` for adapters at run time. Requests for different adapters share every batch; at most
--max-loras-per-batch distinct adapters (the base model counts as one) run in one batch.

When adapters will be loaded at run time, give both --max-lora-rank and --lora-target-modules: the adapter
pool is sized once at start-up and later adapters must fit it.

SIGINT or SIGTERM stops accepting requests, closes the server and exits with status 0.

## OPTIONS

${manOptions(serveOptions)}
## ADAPTER LIST FORMS

--lora-paths takes space-separated entries in three forms, which may be mixed: \`PATH\` (name and path are both
PATH), \`NAME=PATH\` (split at the first \`=\`), and a JSON object
\`{"lora_name":"sql","lora_path":"./adapters/sql","pinned":true}\` (pinned defaults to false). A config file may
also give an object \`{"sql": "./adapters/sql"}\` or a list of the JSON objects.

## CONFIGURATION FILE

\`--config FILE\` (or TSLORA_CONFIG) names a JSON object whose keys are the flag names (\`"max-loras-per-batch"\`)
or their camelCase forms (\`"maxLorasPerBatch"\`); aliases work too. Unknown keys are an error naming the key.
Relative paths in the file are resolved against the file's directory. Precedence: defaults < config file <
environment < flags.

## VALIDATION

All checks run before anything is loaded; a failure prints one message (what was given, what is allowed, what
to do) and exits with status 2. The LoRA checks run in SGLang's order:

${VALIDATION.map((rule, i) => `* Rule ${i + 1}: ${rule}`).join('\n')}

Checks that need the model (context length against max_position_embeddings, tp-size against the attention heads
and visible GPUs, start-up adapters against an explicit pool) run while the model loads.

${EXIT_STATUS}
## EXAMPLES

\`tslora serve\`\\
  the embedded demo model and its adapters on the CPU.

\`tslora serve --model-path ./Qwen2.5-0.5B --lora-paths sql=./loras/sql chat=./loras/chat\`\\
  two adapters, LoRA turned on by --lora-paths.

\`tslora serve --model ./llama --enable-lora --max-lora-rank 64 --lora-target-modules all\`\\
  no start-up adapters; load them later with tslora-adapter(1).

## SEE ALSO

tslora(1), tslora-adapter(1), tslora-bench(1)
`;
}

function adapterPage(): string {
  return `# tslora-adapter(1) -- load, unload, pin and list adapters on a running server

## SYNOPSIS

\`tslora adapter load\` NAME PATH [--pinned] [OPTIONS]\\
\`tslora adapter unload\` NAME [OPTIONS]\\
\`tslora adapter pin\` NAME [OPTIONS]\\
\`tslora adapter unpin\` NAME [OPTIONS]\\
\`tslora adapter list\` [OPTIONS]

## DESCRIPTION

Talks to the HTTP API of a running \`tslora serve\` (or SGLang) server. \`load\` sends \`POST /load_lora_adapter\`
(PATH is read by the server; a relative PATH that exists on this machine is sent as an absolute path, anything
else as typed); \`unload\` sends \`POST /unload_lora_adapter\` and returns once the
adapter's running requests have finished; \`pin\` and \`unpin\` use \`POST /pin_lora_adapter\` and, against a server
without it, unload the adapter and load it again with the new flag (requests for it fail in between); \`list\`
reads \`GET /v1/models\`.

A pinned adapter keeps its device slot and is never evicted; at most max-loras-per-batch − 1 adapters may be
pinned, so that base and unpinned requests always have a slot.

## OPTIONS

${manOptions([...adapterLoadOptions, ...adapterOptions])}
${EXIT_STATUS}
## EXAMPLES

\`tslora adapter load sql ./loras/sql --pinned\`\\
\`tslora adapter list --json\`\\
\`TSLORA_URL=http://gpu-box:30000 tslora adapter unload sql\`

## SEE ALSO

tslora(1), tslora-serve(1)
`;
}

function benchPage(): string {
  const synthModel = synthOptions.filter((o) => o.group === 'synth model');
  const synthAdapters = synthOptions.filter((o) => o.group !== 'synth model');
  return `# tslora-bench(1) -- latency experiments for multi-LoRA serving

## SYNOPSIS

\`tslora bench\` [CONFIG] [OPTIONS]\\
\`tslora synth model\` [OPTIONS]\\
\`tslora synth adapters\` [OPTIONS]

## DESCRIPTION

\`tslora bench\` runs the experiments described by a JSON config (a path, or the name of a bundled one in
bench-configs/): it launches \`tslora serve\` once per variant (or uses --url), drives the workload, and reports
TTFT, ITL, end-to-end latency and throughput as tables, JSON and charts. \`tslora synth\` writes random-weight
models and PEFT adapters in the Hugging Face layout for such runs.

## OPTIONS

${manOptions(benchOptions)}
## SYNTH OPTIONS

${manOptions(synthModel)}
${manOptions(synthAdapters)}
${EXIT_STATUS}
## SEE ALSO

tslora(1), tslora-serve(1)
`;
}

function toRoff(markdown: string): string {
  const result = spawnSync(
    process.execPath,
    [join(ROOT, 'node_modules/marked-man/bin/marked-man.js'), '--no-breaks', '--version', VERSION, '--date', DOCS_DATE, '--manual', MANUAL],
    { input: markdown, encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`marked-man failed: ${result.stderr}`);
  // marked HTML-escapes code spans and marked-man keeps the entities; roff wants the characters
  return result.stdout.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function readmeTable(title: string, table: readonly OptionSpec[]): string {
  const rows = table.map((spec) => {
    const names = [`\`${term(spec)}\``, ...(spec.aliases ?? []).map((a) => `\`--${a}\``)].join(', ');
    const more = (spec.type === 'enum' && spec.choices ? ` One of: ${spec.choices.join(', ')}.` : '') + (spec.repeatable ? ' Repeatable.' : '');
    const def = spec.defaultValue === undefined ? '' : `\`${String(spec.defaultValue)}\``;
    return `| ${names} | ${def} | ${spec.env ? `\`${spec.env}\`` : ''} | ${cell(spec.help + more)} |`;
  });
  return `#### ${title}\n\n| Flag | Default | Environment | Meaning |\n|---|---|---|---|\n${rows.join('\n')}\n`;
}

export function flagReference(): string {
  const parts = ['<!-- Generated by `npm run man` (scripts/gen-docs.ts) from the option tables; do not edit by hand. -->\n'];
  parts.push('### `tslora serve`\n');
  for (const [group, specs] of groups(serveOptions)) parts.push(readmeTable(group, specs));
  parts.push('### `tslora adapter`\n');
  parts.push(readmeTable('load, unload, pin, unpin, list', [...adapterLoadOptions, ...adapterOptions]));
  parts.push('### `tslora generate`\n');
  for (const [group, specs] of groups(generateOptions)) parts.push(readmeTable(group, specs));
  parts.push('Connection and output options: as `tslora adapter` (`--url`, `--api-key`, `--timeout`, `--[no-]json`).\n');
  parts.push('### `tslora bench` and `tslora synth`\n');
  for (const [group, specs] of groups(benchOptions)) parts.push(readmeTable(`bench: ${group}`, specs));
  for (const [group, specs] of groups(synthOptions)) parts.push(readmeTable(group, specs));
  return parts.join('\n');
}

export function replaceFlagSection(readme: string, section: string): string {
  const begin = readme.indexOf(FLAGS_BEGIN);
  const end = readme.indexOf(FLAGS_END);
  if (begin === -1 || end === -1 || end < begin) throw new Error(`README.md lacks the ${FLAGS_BEGIN} ... ${FLAGS_END} markers`);
  return `${readme.slice(0, begin + FLAGS_BEGIN.length)}\n${section}\n${readme.slice(end)}`;
}

export const PAGES: Record<string, () => string> = {
  'tslora.1': tsloraPage,
  'tslora-serve.1': servePage,
  'tslora-adapter.1': adapterPage,
  'tslora-bench.1': benchPage,
};

function main(): void {
  const outIndex = process.argv.indexOf('--out');
  const outDir = outIndex === -1 ? ROOT : process.argv[outIndex + 1];
  mkdirSync(join(outDir, 'man'), { recursive: true });
  for (const [file, page] of Object.entries(PAGES)) writeFileSync(join(outDir, 'man', file), toRoff(page()));
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  writeFileSync(join(outDir, 'README.md'), replaceFlagSection(readme, flagReference()));
  process.stdout.write(`wrote ${Object.keys(PAGES).length} man pages and the README flag reference under ${outDir}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
