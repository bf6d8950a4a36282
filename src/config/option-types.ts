/**
 * The shape of one entry of an option table. A table (serve, adapter, bench, synth) is the single source for
 * commander flags, TSLORA_* environment variables, config-file keys, --help, the man pages and the README's
 * flag reference.
 */
export type OptionValueType = 'string' | 'int' | 'float' | 'boolean' | 'list' | 'enum';

export interface OptionSpec {
  /** Config key, camelCase: `maxLorasPerBatch`. The flag is its kebab-case form unless `flag` is given. */
  key: string;
  /** Long flag without dashes (`max-loras-per-batch`). */
  flag: string;
  aliases?: string[];
  type: OptionValueType;
  /** For 'enum': the allowed values. */
  choices?: readonly string[];
  /** undefined = unset (e.g. inferred later). */
  defaultValue?: unknown;
  /** Placeholder in help: `N`, `PATH`, `SECONDS`. */
  valueName?: string;
  /** Environment variable; by convention `TSLORA_` + the flag in upper snake case. */
  env?: string;
  /** One-line description for --help. */
  help: string;
  /** Longer text for the man page and README (optional). */
  details?: string;
  /** Heading the option is grouped under in help and docs. */
  group: string;
  /** Booleans: accept --no-<flag> so that a config file's true can be overridden (spec a.1). */
  negatable?: boolean;
  /** Lists: the flag takes one value and may be given several times (`--lora a --lora b`), instead of taking
   *  every following word (which would swallow positional arguments). */
  repeatable?: boolean;
}
