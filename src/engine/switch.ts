import type { Layout } from '../layout/paths.ts';
import { switchCurrent } from '../layout/swap.ts';
import { writeState, type State } from '../state/state.ts';
import type { Services } from './services.ts';

/**
 * Record the intent, swap `current`, record the result: recovery can always tell which happened.
 * With `activating`, the pending record stays (phase "activating") until the caller has restarted
 * the units and seen them healthy, so a kill in between is undone by the next run.
 */
export async function switchTo(
  layout: Layout,
  state: State,
  from: string | null,
  to: string,
  op: 'update' | 'rollback',
  services: Services,
  opts: { activating: boolean } = { activating: false },
): Promise<void> {
  services.reporter.step(`Switching current: ${from ? `v${from}` : '(none)'} -> v${to}`);
  state.pending = { op, from, to, startedAt: new Date().toISOString(), pid: process.pid, phase: 'switching' };
  await writeState(layout, state);
  await switchCurrent(layout, to);
  state.previous = from;
  state.pending = opts.activating ? { ...state.pending, phase: 'activating' } : null;
  await writeState(layout, state);
}

/** The switched-to release is up and healthy: nothing left to recover. */
export async function settle(layout: Layout, state: State): Promise<void> {
  if (state.pending === null) return;
  state.pending = null;
  await writeState(layout, state);
}
