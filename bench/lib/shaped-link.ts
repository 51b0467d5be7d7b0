// A TCP proxy that behaves like a slow link: each direction gets a bandwidth limit and a
// one-way delay (RTT/2). This kernel has no netem, so the shaping happens here, in user space;
// the proxy also counts the bytes that cross it.
import net from 'node:net';

export interface LinkShape {
  /** Bits per second in each direction; 0 for unlimited. */
  bitsPerSecond: number;
  /** Round-trip time added, in milliseconds. */
  rttMs: number;
}

export interface ShapedLink {
  /** 127.0.0.1:<port> to connect to instead of the target. */
  readonly address: string;
  readonly port: number;
  /** Bytes sent from the target to clients, and from clients to the target. */
  bytes(): { down: number; up: number };
  close(): Promise<void>;
}

/** Bytes a direction may hold in flight before it stops reading its source. */
const MAX_IN_FLIGHT = 1024 * 1024;

/**
 * One direction of a link: data leaves in order, no faster than the rate, after the delay. The
 * source is paused while much is in flight, so a fast sender is held back, not buffered. One
 * queue and one timer keep everything, the final FIN included, in its order.
 */
class Pipe {
  private readonly shape: LinkShape;
  private readonly source: net.Socket;
  private readonly out: net.Socket;
  private readonly count: (bytes: number) => void;
  private readonly queue: Array<{ due: number; chunk: Buffer | null }> = [];
  private timer: NodeJS.Timeout | undefined;
  private nextFree = 0;
  private inFlight = 0;

  constructor(shape: LinkShape, source: net.Socket, out: net.Socket, count: (bytes: number) => void) {
    this.shape = shape;
    this.source = source;
    this.out = out;
    this.count = count;
    source.on('data', (chunk: Buffer) => this.send(chunk));
    source.on('end', () => this.enqueue(null));
  }

  private send(chunk: Buffer): void {
    this.count(chunk.length);
    const wireMs = this.shape.bitsPerSecond > 0 ? (chunk.length * 8 * 1000) / this.shape.bitsPerSecond : 0;
    this.nextFree = Math.max(performance.now(), this.nextFree) + wireMs;
    this.inFlight += chunk.length;
    if (this.inFlight > MAX_IN_FLIGHT) this.source.pause();
    this.enqueue(chunk);
  }

  /** `null` stands for the end of the stream. */
  private enqueue(chunk: Buffer | null): void {
    this.queue.push({ due: Math.max(performance.now(), this.nextFree) + this.shape.rttMs / 2, chunk });
    this.arm();
  }

  private arm(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => this.deliver(), Math.max(0, this.queue[0]!.due - performance.now()));
  }

  private deliver(): void {
    this.timer = undefined;
    const now = performance.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now + 1) {
      const { chunk } = this.queue.shift()!;
      if (this.out.destroyed) continue;
      if (chunk === null) {
        this.out.end();
        continue;
      }
      this.inFlight -= chunk.length;
      this.out.write(chunk);
    }
    if (this.inFlight <= MAX_IN_FLIGHT / 4) this.source.resume();
    this.arm();
  }
}

/** A link on this host's loopback to `targetHost:targetPort`. */
export async function startShapedLink(targetHost: string, targetPort: number, shape: LinkShape): Promise<ShapedLink> {
  let down = 0;
  let up = 0;
  const sockets = new Set<net.Socket>();
  // Half-open: a side's FIN must travel through the pipe too, after the data before it.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ port: targetPort, host: targetHost, allowHalfOpen: true });
    sockets.add(client).add(upstream);
    new Pipe(shape, client, upstream, (bytes) => { up += bytes; });
    new Pipe(shape, upstream, client, (bytes) => { down += bytes; });
    // A side that ends is ended on the other side by its pipe, after the data in flight.
    client.on('close', () => sockets.delete(client));
    upstream.on('close', () => sockets.delete(upstream));
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `127.0.0.1:${port}`,
    port,
    bytes: () => ({ down, up }),
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}
