import { execFileSync } from 'node:child_process';
import { createReadStream, mkdtempSync, readFileSync, statSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { Duplex } from 'node:stream';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A throwaway CA and a server certificate for 127.0.0.1/localhost, made with openssl per run. */
export interface TestCA {
  caFile: string;
  cert: string;
  key: string;
}

export function makeTestCA(dir = mkdtempSync(path.join(tmpdir(), 'cutover-ca-'))): TestCA {
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  };
  run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=cutover test CA',
  ]);
  run(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  const ext = path.join(dir, 'san.ext');
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > ${ext}`]);
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.ext']);
  return {
    caFile: path.join(dir, 'ca.pem'),
    cert: readFileSync(path.join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(path.join(dir, 'server.key'), 'utf8'),
  };
}

export type Fault =
  | { kind: 'status'; status: number; times?: number }
  | { kind: 'truncate'; after: number }
  | { kind: 'extra'; bytes: number }
  | { kind: 'hang' }
  /** Headers, then `bytesPerTick` (default 1) bytes every `intervalMs` to the end. */
  | { kind: 'trickle'; intervalMs: number; bytesPerTick?: number }
  /** The first `after` bytes, a pause of `ms`, then the rest at once. */
  | { kind: 'stall'; after: number; ms: number }
  | { kind: 'redirect'; to: string }
  /** A link of this bandwidth: the body paced so that no more than `bytesPerSecond` has gone at any time. */
  | { kind: 'rate'; bytesPerSecond: number }
  | { kind: 'replace'; body: Buffer };

type Content = Buffer | { file: string };

/** A real HTTPS release server on 127.0.0.1 that can misbehave on request. */
export class ReleaseServer {
  readonly files = new Map<string, Content>();
  readonly faults = new Map<string, Fault>();
  readonly hits: string[] = [];
  private server: Server | undefined;
  private readonly ca: TestCA;
  private readonly sockets = new Set<Duplex>();
  port = 0;

  constructor(ca: TestCA) {
    this.ca = ca;
  }

  get origin(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  url(p: string): string {
    return `${this.origin}/${p.replace(/^\//, '')}`;
  }

  async start(): Promise<this> {
    this.server = createServer({ cert: this.ca.cert, key: this.ca.key }, (req, res) => {
      const p = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/').replace(/^\//, '');
      this.hits.push(p);
      this.serve(p, res);
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private serve(p: string, res: ServerResponse): void {
    const fault = this.faults.get(p);
    const content = this.files.get(p);
    if (fault?.kind === 'status') {
      if (fault.times === undefined || fault.times > 0) {
        if (fault.times !== undefined) fault.times--;
        res.writeHead(fault.status).end('fault');
        return;
      }
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(302, { location: fault.to }).end();
      return;
    }
    if (!content) {
      res.writeHead(404).end('not found');
      return;
    }
    const body = Buffer.isBuffer(content) ? content : undefined;
    const size = body ? body.length : statSync((content as { file: string }).file).size;
    if (fault?.kind === 'replace') {
      res.writeHead(200, { 'content-length': fault.body.length }).end(fault.body);
      return;
    }
    if (fault?.kind === 'hang') {
      res.writeHead(200, { 'content-length': size });
      res.write(body ? body.subarray(0, Math.min(100, size)) : Buffer.alloc(0));
      return; // never ends
    }
    if (fault?.kind === 'rate') {
      res.writeHead(200, { 'content-length': size });
      void pace(body ?? createReadStream((content as { file: string }).file, { highWaterMark: 64 * 1024 }), res, fault.bytesPerSecond);
      return;
    }
    if (fault?.kind === 'trickle') {
      res.writeHead(200, { 'content-length': size });
      const data = body ?? readFileSync((content as { file: string }).file);
      const step = fault.bytesPerTick ?? 1;
      let i = 0;
      const t = setInterval(() => {
        if (res.destroyed || i >= data.length) {
          clearInterval(t);
          res.end();
          return;
        }
        res.write(data.subarray(i, i + step));
        i += step;
      }, fault.intervalMs);
      res.on('close', () => clearInterval(t));
      return;
    }
    if (fault?.kind === 'stall') {
      res.writeHead(200, { 'content-length': size });
      const data = body ?? readFileSync((content as { file: string }).file);
      res.write(data.subarray(0, fault.after));
      const t = setTimeout(() => res.end(data.subarray(fault.after)), fault.ms);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (fault?.kind === 'truncate') {
      res.writeHead(200, { 'content-length': size });
      const data = body ?? readFileSync((content as { file: string }).file);
      res.write(data.subarray(0, fault.after), () => res.destroy());
      return;
    }
    if (fault?.kind === 'extra') {
      const data = Buffer.concat([body ?? readFileSync((content as { file: string }).file), Buffer.alloc(fault.bytes, 0x41)]);
      res.writeHead(200).end(data); // chunked: no content-length to give it away
      return;
    }
    if (body) {
      res.writeHead(200, { 'content-length': size }).end(body);
    } else {
      res.writeHead(200, { 'content-length': size });
      createReadStream((content as { file: string }).file, { highWaterMark: 1 << 20 }).pipe(res);
    }
  }
}

/** Write `source` to `res` at `rate` bytes per second, honouring back-pressure. */
async function pace(source: Buffer | AsyncIterable<Buffer>, res: ServerResponse, rate: number): Promise<void> {
  const started = performance.now();
  let sent = 0;
  const chunks: AsyncIterable<Buffer> | Buffer[] = Buffer.isBuffer(source)
    ? Array.from({ length: Math.ceil(source.length / 65536) }, (_, i) => source.subarray(i * 65536, (i + 1) * 65536))
    : source;
  try {
    for await (const chunk of chunks) {
      if (res.destroyed) return;
      const due = started + (sent / rate) * 1000;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      sent += chunk.length;
      if (!res.write(chunk)) {
        await new Promise<void>((r) => {
          const done = (): void => {
            res.off('drain', done);
            res.off('close', done);
            r();
          };
          res.on('drain', done);
          res.on('close', done);
        });
      }
    }
    res.end();
  } catch {
    res.destroy();
  }
}
