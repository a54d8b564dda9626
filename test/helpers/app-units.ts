/** The demo app and the units shipped in systemd/, pointed at a test's root, port, Node and account. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { CLI, REPO, type RunResult } from './cli.ts';
import { removeAccount } from './accounts.ts';
import type { Systemd } from './systemd.ts';
import type { World } from './world.ts';

export const APP = readFileSync(path.join(REPO, 'test', 'fixtures', 'demo-app', 'server.mjs'), 'utf8');
export const NODE_FLAGS = ['--disable-warning=ExperimentalWarning'];

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * The units from systemd/ as shipped, pointed at this test's root, port, Node and app account.
 * PrivateTmp=yes would give the unit an empty /var/tmp of its own, where the test root lives
 * (the namespaced systemd's workDir): so that one line becomes PrivateTmp=no.
 */
export function unitFrom(file: string, root: string, port: number, account: string): string {
  const text = readFileSync(path.join(REPO, 'systemd', file), 'utf8');
  assert.match(text, /^User=demo$/m, `${file} runs as User=demo`);
  assert.match(text, /^Group=demo$/m, `${file} runs as Group=demo`);
  return text
    .replaceAll('/opt/demo', root)
    .replaceAll('/usr/bin/node', process.execPath)
    .replace('Environment=PORT=9007', `Environment=PORT=${port}`)
    .replace(/^User=demo$/m, `User=${account}`)
    .replace(/^Group=demo$/m, `Group=${account}`)
    .replace('PrivateTmp=yes', 'PrivateTmp=no');
}

export async function health(port: number): Promise<{ status: number; version?: string } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
    const body = (await res.json().catch(() => ({}))) as { version?: string };
    return { status: res.status, ...(body.version ? { version: body.version } : {}) };
  } catch {
    return null;
  }
}

/** The config lines for the example units run as `account` and gated on /health at `port`. */
export function unitsConfig(account: string, port: number, gate: { timeout?: string; interval?: string } = {}): string {
  return `user = "${account}"

[service]
units = ["demo.service", "demo-worker.service"]

[health]
url = "http://127.0.0.1:${port}/health"
timeout = "${gate.timeout ?? '8s'}"
interval = "${gate.interval ?? '200ms'}"
successes = 3
probe_timeout = "1s"
`;
}

/** Tear down a service test: systemd first (userdel refuses an account that still has processes), then the world, then the account. */
export async function stopAll(sd: Systemd | undefined, w: World | undefined, account: string): Promise<void> {
  try {
    await sd?.stop();
    await w?.close();
  } finally {
    if (account) removeAccount(account);
  }
}

/** A World runner that runs the CLI inside `sd`'s namespace (as the tests' units see it). */
export function cliIn(sd: Systemd): (args: string[], env: NodeJS.ProcessEnv) => Promise<RunResult> {
  return (args, env) =>
    sd.exec(process.execPath, [...NODE_FLAGS, CLI, ...args], { env: { CUTOVER_PROG: 'demo', ...(env as Record<string, string>) }, timeoutMs: 120_000 });
}
