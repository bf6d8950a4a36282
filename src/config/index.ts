// The configuration layer: option tables (single source for flags, env, config file, help, docs) and resolvers.
export type { OptionSpec, OptionValueType } from './option-types.js';
export type { ServeConfig, StartupAdapter, LogLevel } from './serve-config.js';
export { serveOptions, SERVE_GROUPS, LORA_TUNING_KEYS } from './serve-options.js';
export { adapterOptions, adapterLoadOptions, resolveAdapterCliConfig, DEFAULT_SERVER_URL, type AdapterCliConfig } from './adapter-options.js';
export { generateOptions, resolveGenerateRequest, adaptersForPrompts, BASE_LORA_NAMES, type GenerateRequestPlan } from './generate-options.js';
export { benchOptions, synthOptions } from './bench-options.js';
export { resolveServeConfig } from './resolve-serve.js';
export { readConfigFile } from './config-file.js';
export { layerValues, configFileByKey, type ConfigFileValues, type LayeredValue, type LayeredValues } from './layers.js';
export { coerceValue, splitListString, type ValueSource } from './coerce.js';
export { defineOptions, findOption, envNameForFlag, kebabToCamel, camelToKebab } from './option-names.js';
export { parseLoraPaths, parseLoraPathEntry } from './lora-paths.js';
export { parseTargetModules, normalizeTargetModule, canonicalModuleSet, FUSED_TARGET_MODULES, ACCEPTED_MODULE_NAMES } from './target-modules.js';
export { CHUNK_SIZES } from './serve-rules.js';
