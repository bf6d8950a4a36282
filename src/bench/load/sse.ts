/**
 * A minimal server-sent-events splitter: feed it text chunks as they arrive, it yields each event's data
 * (multi-line `data:` fields joined by "\n"). Comments and other fields are ignored, as the spec (b.6) only uses data.
 */
export class SseSplitter {
  private buffer = '';
  private dataLines: string[] = [];

  /** Returns the complete events contained in the text seen so far. */
  push(chunk: string): string[] {
    this.buffer += chunk;
    const events: string[] = [];
    let newline: number;
    while ((newline = this.buffer.indexOf('\n')) >= 0) {
      let line = this.buffer.slice(0, newline);
      this.buffer = this.buffer.slice(newline + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (this.dataLines.length > 0) events.push(this.dataLines.join('\n'));
        this.dataLines = [];
      } else if (line.startsWith('data:')) {
        this.dataLines.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
    return events;
  }

  /** An event not terminated by a blank line when the stream ended. */
  flush(): string[] {
    const rest = this.push('\n\n');
    this.buffer = '';
    return rest;
  }
}
