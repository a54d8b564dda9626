/**
 * Which backups are kept: pure decisions on the state's records, for the planner and `backups`.
 */
import type { BackupRecord } from '../state/state.ts';

/**
 * Which retained release each backup would bring back: for every installed release other than
 * current, the newest backup taken on it. Those are never pruned.
 */
export function protectedBy(backups: BackupRecord[], installed: string[], current: string | null): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of installed) {
    if (v === current) continue;
    const newest = backups.filter((b) => b.version === v).at(-1);
    if (newest) out.set(newest.id, v);
  }
  return out;
}

/** Backups beyond `keep`, oldest first, not counting those that protect a retained release. */
export function planBackupPrune(backups: BackupRecord[], installed: string[], current: string | null, keep: number): string[] {
  const guarded = protectedBy(backups, installed, current);
  const others = backups.filter((b) => !guarded.has(b.id));
  return others.slice(0, Math.max(0, others.length - keep)).map((b) => b.id);
}

/** The newest backup taken on `version`: what `rollback --restore` to it uses. */
export function backupFor(backups: BackupRecord[], version: string): BackupRecord | undefined {
  return backups.filter((b) => b.version === version).at(-1);
}

/** UTC time to the second, for names: 20261203T131500Z. */
export function compactStamp(now: number): string {
  return new Date(now)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** A new backup id: the UTC time and the release it is taken on, unique among `existing`. */
export function newBackupId(now: number, version: string | null, existing: BackupRecord[]): string {
  const base = `${compactStamp(now)}-${version ? `v${version}` : 'none'}`;
  let id = base;
  for (let n = 2; existing.some((b) => b.id === id); n++) id = `${base}-${n}`;
  return id;
}

/** A backup about to be taken, as the prune planner sees it (its id and the release it is taken on). */
export function pendingBackup(id: string, version: string | null): BackupRecord {
  return { id, version, schema: null, rollbackSafe: null, reason: 'update', created: '', file: '', bytes: 0, sha256: '' };
}
