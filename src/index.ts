// The programmatic API of tslora: a plain list of re-exports (other areas append their own lines).
export { TsloraError, isTsloraError, toTsloraError, exitCodeForCode, httpStatusForCode, EXIT_CODES } from './errors.js';
export type { TsloraErrorCode, TsloraErrorOptions } from './errors.js';
export {
  resolveServeConfig,
  readConfigFile,
  resolveAdapterCliConfig,
  serveOptions,
  adapterOptions,
  adapterLoadOptions,
  benchOptions,
  synthOptions,
  parseLoraPaths,
  parseTargetModules,
  normalizeTargetModule,
} from './config/index.js';
export type { OptionSpec, ServeConfig, StartupAdapter, ConfigFileValues, AdapterCliConfig } from './config/index.js';
export { TsloraClient } from './client/index.js';
export type { TsloraClientOptions, PinResult } from './client/index.js';
export type * from './protocol/adapters.js';
export { loadAdapterRequestSchema, unloadAdapterRequestSchema, pinAdapterRequestSchema } from './protocol/adapters.js';
export { startServer } from './server/index.js';
export type { RunningServer } from './server/index.js';
