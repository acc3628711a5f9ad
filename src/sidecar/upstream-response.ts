/** The upstream response of the node:http and node:http2 paths: a Readable body behind the pool's interface. */
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { UpstreamBodySink, UpstreamResponse } from './upstream.js';

/** A node:http or node:http2 response (a Readable body) as an {@link UpstreamResponse}. */
export class ReadableResponse implements UpstreamResponse {
  constructor(
    readonly status: number,
    readonly headers: IncomingHttpHeaders,
    private readonly body: Readable,
    private readonly trailers: () => IncomingHttpHeaders | undefined,
    readonly endStream: boolean,
    readonly peerPrincipal: string,
    readonly headBytes: number,
  ) {}

  pipeBody(sink: UpstreamBodySink): void {
    const body = this.body;
    body.on('data', (chunk: Buffer) => {
      if (sink.onBodyData(chunk) === false) body.pause();
    });
    body.on('end', () => sink.onBodyEnd(this.trailers()));
    body.on('error', (err) => sink.onBodyError(err));
    body.on('aborted', () => sink.onBodyAborted());
  }

  resume(): void {
    this.body.resume();
  }

  drain(): void {
    this.body.resume();
  }

  destroy(): void {
    this.body.destroy();
  }
}
