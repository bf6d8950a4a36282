/** Entry of `tslora bench` once flags are parsed: resolves the config, runs it, reports, returns the exit code. */
export async function runBenchCli(configArg: string, options: Record<string, unknown>): Promise<number> {
  void configArg;
  void options;
  throw new Error('tslora bench is not implemented yet');
}
