/**
 * Server-sent events for the bench, parsed by eventsource-parser (the client in src/client/http.ts uses the same
 * library): feed text chunks as they arrive, get back the `data` of each complete event. Comments, ids and retry
 * fields are ignored: the streaming APIs carry everything in `data`.
 */
import { createParser, type EventSourceParser } from 'eventsource-parser';

export class SseEvents {
  private readonly parser: EventSourceParser;
  private ready: string[] = [];

  constructor() {
    this.parser = createParser({ onEvent: (event) => this.ready.push(event.data) });
  }

  /** The data of the events completed by this chunk, in order. */
  push(chunk: string): string[] {
    this.parser.feed(chunk);
    return this.take();
  }

  /** An event not terminated by a blank line when the stream ended (servers that end with `data: [DONE]` and no
   * blank line: dispatched, where a browser's EventSource would drop it). */
  flush(): string[] {
    this.parser.feed('\n\n');
    this.parser.reset();
    return this.take();
  }

  private take(): string[] {
    const events = this.ready;
    this.ready = [];
    return events;
  }
}
