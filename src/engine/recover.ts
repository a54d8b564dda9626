import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Layout } from '../layout/paths.ts';
import { CURRENT_TMP_PREFIX } from '../layout/paths.ts';
import { emptyPrivateDir } from '../layout/trusted-path.ts';
import { readState, type Journal, type LegacyPending, type State } from '../state/state.ts';
import { engineContext, type EngineConfig } from './context.ts';
import { recoverJournal } from './executor.ts';
import type { Services } from './services.ts';

export interface Recovery {
  removed: string[];
  pending: 'none' | 'completed' | 'undone';
}

/**
 * Run under the lock before any operation that changes something: clear what a killed run left
 * behind (staging, downloads, trash, temporary links), then settle the journal's interrupted
 * operation, if any, through the executor (see executor.ts, recoverJournal).
 */
export async function recover(config: EngineConfig, services: Services, layout: Layout): Promise<{ state: State; recovery: Recovery }> {
  const { reporter } = services;
  const removed: string[] = [];
  for (const dir of [layout.staging, layout.downloads, layout.trash]) {
    // Never followed: a link planted in place of one of these is removed, its target untouched.
    removed.push(...emptyPrivateDir(dir));
  }
  const rootNames = await readdir(layout.root).catch(() => [] as string[]);
  for (const n of rootNames) {
    if (n.startsWith(CURRENT_TMP_PREFIX)) {
      await rm(path.join(layout.root, n), { force: true });
      removed.push(path.join(layout.root, n));
    }
  }
  if (removed.length) reporter.warn(`cleaned up ${removed.length} leftover(s) of an interrupted run`);

  const state = await readState(layout);
  if (state.legacyPending) {
    state.journal = journalFromLegacy(state.legacyPending, config.service.units, state.previous);
    delete state.legacyPending;
  }
  let pending: Recovery['pending'] = 'none';
  if (state.journal) {
    const ctx = engineContext(config, services, layout, state, new AbortController().signal);
    pending = await recoverJournal(ctx, state.journal);
  }
  return { state, recovery: { removed, pending } };
}

/**
 * An older cutover (state format 1) recorded only the switch: "switching" (the link may have
 * moved) or "activating" (it moved; the units may have been restarted, health not yet seen).
 * The same facts as a journal: an update is undone, a rollback completed, as that version did.
 */
function journalFromLegacy(p: LegacyPending, units: string[], previous: string | null): Journal {
  const activating = p.phase !== 'switching';
  // Format 1 overwrote `previous` with `from` when the link moved: before that it is still the old one.
  const previousBefore = activating ? null : previous;
  const steps: Journal['steps'] = [
    { step: { kind: 'switch', from: p.from, to: p.to, previous: previousBefore }, status: activating ? 'done' : 'running' },
    ...units.map((unit) => ({ step: { kind: 'restart' as const, unit }, status: activating ? ('running' as const) : ('pending' as const) })),
  ];
  return {
    op: p.op,
    from: p.from,
    to: p.to,
    startedAt: p.startedAt,
    pid: p.pid,
    recovery: p.op === 'rollback' ? 'resume' : 'undo',
    commitAt: steps.length - 1,
    steps,
  };
}
