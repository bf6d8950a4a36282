/** Entries of `tslora synth model|adapters` once flags are parsed. */
export async function runSynthModelCli(options: Record<string, unknown>): Promise<number> {
  void options;
  throw new Error('tslora synth model is not implemented yet');
}

export async function runSynthAdaptersCli(options: Record<string, unknown>): Promise<number> {
  void options;
  throw new Error('tslora synth adapters is not implemented yet');
}
