/**
 * Read a V8 `.cpuprofile` (from `node --cpu-prof`) and say where the main thread spent its time:
 * self time by function and by module. zlib inflate and file I/O in the libuv thread pool show
 * up only as the main thread being idle.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const TOP = 15;

export function summariseProfile(file: string, label: string, wallMs: number): string {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i] as number;
    // timeDeltas[i] is the gap before sample i; charge it to the sample after it.
    const dt = p.timeDeltas[i + 1] ?? 0;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const byFn = new Map<string, number>();
  const byModule = new Map<string, number>();
  let total = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id);
    if (!n) continue;
    total += us;
    const { functionName, url, lineNumber } = n.callFrame;
    const mod = moduleOf(url);
    const fn = `${functionName || '(anonymous)'} ${mod}${url ? `:${lineNumber + 1}` : ''}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + us);
    byModule.set(mod, (byModule.get(mod) ?? 0) + us);
  }
  const fmt = (m: Map<string, number>): string[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, TOP)
      .map(([k, us]) => `  ${(us / 1000).toFixed(0).padStart(6)} ms ${((100 * us) / total).toFixed(1).padStart(5)}%  ${k}`);
  return [
    `cpu profile of cutover update, ${label} (main thread; wall ${(wallMs / 1000).toFixed(2)} s, profiled ${(total / 1e6).toFixed(2)} s; ${file})`,
    'self time by module:',
    ...fmt(byModule),
    'self time by function:',
    ...fmt(byFn),
  ].join('\n');
}

/** node_modules/<pkg>, src/<file>, node:<builtin>, or the V8 pseudo-frame. */
function moduleOf(url: string): string {
  if (!url) return '(native/V8)';
  if (url.startsWith('node:')) return url;
  const nm = url.lastIndexOf('/node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + '/node_modules/'.length).split('/');
    return rest[0]?.startsWith('@') ? `${rest[0]}/${rest[1] ?? ''}` : (rest[0] ?? url);
  }
  const src = url.indexOf('/src/');
  if (src >= 0) return url.slice(src + 1);
  return path.basename(url);
}
