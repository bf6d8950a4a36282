// Placeholder owned by the serving work (issue 4): replaced by the real server. Kept only so the CLI compiles.
import { TsloraError } from '../errors.js';
import type { ServeConfig } from '../config/serve-config.js';

export interface RunningServer {
  url: string;
  close(): Promise<void>;
}

export async function startServer(_config: ServeConfig): Promise<RunningServer> {
  throw new TsloraError('internal', 'tslora serve: the serving engine is not built yet.', {
    hint: 'This build has the command line and configuration only; the engine lands with the serving work.',
  });
}
