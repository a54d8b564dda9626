/**
 * The one executor: runs an operation's steps in order, journals each one before and after it
 * runs (state.json, written atomically, together with what the step changed), and on a failure
 * undoes the steps already done, in reverse. After a crash, `recoverJournal` reads the journal
 * and either undoes the interrupted operation or completes it. See docs/architecture.md.
 */
import { CutoverError } from '../errors.ts';
import { readCurrent } from '../layout/swap.ts';
import { appendHistory, writeState, type HistoryRecord, type Journal } from '../state/state.ts';
import { journalHint, type Scratch, type StepContext } from './handlers.ts';
import { handlerFor } from './registry.ts';
import { commitIndex } from './plan.ts';
import { describeStep, READ_ONLY, type Step, type StepRecord } from './steps.ts';

export interface Operation {
  op: Journal['op'];
  from: string | null;
  to: string | null;
  steps: Step[];
  recovery: Journal['recovery'];
  commitAt: number;
  /**
   * Called after each step: steps to run instead of the ones after it, once a step has learned
   * what the plan depends on (the signed release.json comes out of `stage`). Null: keep the plan.
   */
  replan?: (done: Step, ctx: StepContext) => Promise<Step[] | null>;
}

/** The context without the per-run parts the executor adds. */
export type EngineContext = Omit<StepContext, 'journal' | 'scratch'>;

export interface Executed {
  records: StepRecord[];
  scratch: Scratch;
}

const never = new AbortController().signal;

function newJournal(base: EngineContext, operation: Operation, status: 'pending' | 'planned'): Journal {
  return {
    op: operation.op,
    from: operation.from,
    to: operation.to,
    startedAt: new Date(base.services.clock.now()).toISOString(),
    pid: process.pid,
    recovery: operation.recovery,
    commitAt: operation.commitAt,
    steps: operation.steps.map((step) => ({ step, status })),
  };
}

function newScratch(): Scratch {
  return { baseline: new Map(), pruned: [] };
}

/**
 * Run every step, journaled. Resolves when all are done; on a failure, undoes what was done and
 * throws the failed step's own error (with what the undo did), or E_ROLLBACK_FAILED (exit 9) when
 * an undo fails too, saying where the machine stands.
 */
export async function execute(base: EngineContext, operation: Operation): Promise<Executed> {
  const journal = newJournal(base, operation, 'pending');
  const ctx: StepContext = { ...base, journal, scratch: newScratch() };
  const started = base.services.clock.now();
  try {
    await runFrom(ctx, 0, operation);
  } catch (e) {
    await history(ctx, {
      result: 'failed',
      code: e instanceof CutoverError ? e.code : 'E_INTERNAL',
      message: (e as Error).message,
      durationMs: base.services.clock.now() - started,
    });
    throw e;
  }
  await history(ctx, { result: 'ok', durationMs: base.services.clock.now() - started, ...(ctx.scratch.pruned.length ? { pruned: ctx.scratch.pruned } : {}) });
  return { records: journal.steps, scratch: ctx.scratch };
}

/**
 * Dry run: the steps that only read (or write into the sandbox) run, the rest are listed as
 * planned. Nothing is journaled: the state file is not touched.
 */
export async function executeDryRun(base: EngineContext, operation: Operation): Promise<Executed> {
  const journal = newJournal(base, operation, 'planned');
  const ctx: StepContext = { ...base, journal, scratch: newScratch() };
  for (const rec of journal.steps) {
    if (!READ_ONLY.has(rec.step.kind)) continue;
    const t0 = base.services.clock.now();
    try {
      await handlerFor(rec.step).do(rec.step, ctx);
    } catch (e) {
      rec.status = 'failed';
      await handlerFor(rec.step)
        .undo?.(rec.step, { ...ctx, signal: never })
        .catch(() => undefined);
      throw withSteps(e, journal.steps);
    }
    rec.status = 'done';
    rec.ms = base.services.clock.now() - t0;
    await replanAfter(ctx, operation, rec, 'planned');
  }
  return { records: journal.steps, scratch: ctx.scratch };
}

/** Replace the steps after `rec` when the operation's replan says so (a refusal there undoes as a failure would). */
async function replanAfter(ctx: StepContext, operation: Operation | undefined, rec: StepRecord, status: 'pending' | 'planned'): Promise<void> {
  if (!operation?.replan) return;
  const next = await operation.replan(rec.step, ctx);
  if (!next) return;
  const at = ctx.journal.steps.indexOf(rec);
  ctx.journal.steps.splice(at + 1, ctx.journal.steps.length, ...next.map((step) => ({ step, status })));
  ctx.journal.commitAt = commitIndex(ctx.journal.steps.map((r) => r.step));
}

async function persist(ctx: StepContext, journal: Journal | null): Promise<void> {
  ctx.state.journal = journal;
  await writeState(ctx.layout, ctx.state);
}

async function runFrom(ctx: StepContext, start: number, operation?: Operation): Promise<void> {
  const { journal } = ctx;
  await persist(ctx, journal);
  for (let i = start; i < journal.steps.length; i++) {
    const rec = journal.steps[i]!;
    if (rec.status === 'done') continue;
    rec.status = 'running';
    delete rec.error;
    await persist(ctx, journal);
    const t0 = ctx.services.clock.now();
    try {
      await handlerFor(rec.step).do(rec.step, ctx);
      rec.ms = ctx.services.clock.now() - t0;
      await replanAfter(ctx, operation, rec, 'pending');
    } catch (e) {
      rec.status = 'failed';
      rec.ms = ctx.services.clock.now() - t0;
      rec.error = e instanceof CutoverError ? e.code : 'E_INTERNAL';
      await persist(ctx, journal).catch(() => {});
      throw await undoFrom(ctx, i, e);
    }
    rec.status = 'done';
    await persist(ctx, journal);
  }
  // Done: a release that passed its health gate is no longer bad (a --no-restart switch proves nothing).
  const gated = journal.steps.some((r) => r.step.kind === 'gate' && r.status === 'done');
  if (journal.to !== null && gated) ctx.state.bad = ctx.state.bad.filter((v) => v !== journal.to);
  await persist(ctx, null);
}

/**
 * Undo steps `index` down to 0 that did (or may have done) something, without the operator's
 * signal: an undo is never cut short. Returns the error to throw.
 */
async function undoFrom(ctx: StepContext, index: number, cause: unknown): Promise<unknown> {
  const uctx: StepContext = { ...ctx, signal: never };
  const did: string[] = [];
  for (let j = index; j >= 0; j--) {
    const rec = ctx.journal.steps[j]!;
    const handler = handlerFor(rec.step);
    if (!handler.undo || !(rec.status === 'done' || rec.status === 'running' || rec.status === 'failed')) continue;
    try {
      const what = await handler.undo(rec.step, uctx);
      if (what) did.push(what);
      rec.status = 'undone';
      await persist(ctx, ctx.journal);
    } catch (ue) {
      const failed = await undoFailed(uctx, cause, rec.step, ue);
      await persist(ctx, null).catch(() => {});
      return failed;
    }
  }
  await persist(ctx, null);
  return withSteps(cause, ctx.journal.steps, did);
}

/** The failure, with what the undo did appended to its message and the steps in its details. */
function withSteps(cause: unknown, records: StepRecord[], did: string[] = []): unknown {
  if (!(cause instanceof CutoverError)) return cause;
  return new CutoverError(cause.code, did.length ? `${cause.message}; ${did.join('; ')}` : cause.message, {
    ...(cause.hint !== undefined ? { hint: cause.hint } : {}),
    cause: cause.cause ?? cause,
    details: { ...cause.details, steps: records.map(describeStep) },
  });
}

async function undoFailed(ctx: StepContext, cause: unknown, step: Step, ue: unknown): Promise<CutoverError> {
  const current = await readCurrent(ctx.layout).catch(() => null);
  const first = cause instanceof Error ? cause.message : String(cause);
  const second = ue instanceof Error ? ue.message : String(ue);
  const where = current ? `current points at releases/v${current}` : 'there is no current release';
  const units = ctx.units.length ? `; units: ${ctx.units.join(', ')}; read \`${journalHint(ctx.units)}\`` : '';
  const cutoverUndo = ue instanceof CutoverError && ue.code === 'E_ROLLBACK_FAILED';
  return new CutoverError('E_ROLLBACK_FAILED', `${first}; ${cutoverUndo ? second : `undoing step ${step.kind} failed: ${second}`}`, {
    hint: `${ue instanceof CutoverError && ue.hint ? `${ue.hint}; ` : ''}${where}${units}; fix it by hand${ctx.units.length ? ', then `systemctl restart` them' : ''}, or install a good release with \`update --version\``,
    cause: ue,
    details: {
      ...(cause instanceof CutoverError ? cause.details : {}),
      ...(ue instanceof CutoverError ? ue.details : {}),
      current,
      failedUndo: step.kind,
      steps: ctx.journal.steps.map(describeStep),
    },
  });
}

async function history(ctx: StepContext, rec: Pick<HistoryRecord, 'result'> & Partial<HistoryRecord>): Promise<void> {
  await appendHistory(ctx.layout, {
    at: new Date(ctx.services.clock.now()).toISOString(),
    op: ctx.journal.op,
    from: ctx.journal.from,
    to: ctx.journal.to,
    ...rec,
    steps: ctx.journal.steps.map((r) => ({ kind: r.step.kind, outcome: r.status, ...(r.ms !== undefined ? { ms: r.ms } : {}) })),
  }).catch(() => {});
}

/** What the next command does with an interrupted operation: undo it, or complete it. */
export function recoveryVerdict(journal: Journal): 'undo' | 'complete' {
  // A failure was already being undone when the process died: finish the undo, whatever the mode.
  if (journal.steps.some((r) => r.status === 'failed' || r.status === 'undone')) return 'undo';
  if (journal.recovery === 'resume') return 'complete';
  const committed = journal.steps.slice(0, journal.commitAt + 1).every((r) => r.status === 'done');
  return committed ? 'complete' : 'undo';
}

/** The step an interrupted operation was in (or last finished). */
export function interruptedAt(journal: Journal): { index: number; step: Step } | null {
  let at = -1;
  journal.steps.forEach((r, i) => {
    if (r.status !== 'pending') at = i;
  });
  const rec = journal.steps[at];
  return rec ? { index: at, step: rec.step } : null;
}

/**
 * Settle an operation a killed process left in the journal: complete it or undo it, through the
 * same handlers, never cut short by a signal. An unhealthy outcome is reported and the caller's
 * command goes on; a failed undo (E_ROLLBACK_FAILED) stops it.
 */
export async function recoverJournal(base: EngineContext, journal: Journal): Promise<'completed' | 'undone'> {
  const ctx: StepContext = { ...base, signal: never, journal, scratch: newScratch() };
  const verdict = recoveryVerdict(journal);
  const started = base.services.clock.now();
  const what = `an interrupted ${journal.op}${journal.to ? ` to v${journal.to}` : ''} (pid ${journal.pid})`;
  if (verdict === 'complete') {
    base.services.reporter.warn(`${what} had got far enough to finish; completing it`);
    try {
      await runFrom(ctx, 0);
    } catch (e) {
      if (e instanceof CutoverError && e.code === 'E_ROLLBACK_FAILED') {
        await recoveryHistory(ctx, 'undone', started, e.message);
        throw e;
      }
      base.services.reporter.warn(`completing it failed and was undone: ${(e as Error).message}`);
      await recoveryHistory(ctx, 'undone', started, (e as Error).message);
      return 'undone';
    }
    await recoveryHistory(ctx, 'completed', started);
    return 'completed';
  }
  base.services.reporter.warn(`${what} never finished; undoing it`);
  const last = interruptedAt(journal)?.index ?? -1;
  const result = await undoFrom(ctx, last, new CutoverError('E_INTERRUPTED', `${what} was interrupted`));
  if (result instanceof CutoverError && result.code === 'E_ROLLBACK_FAILED') {
    await recoveryHistory(ctx, 'undone', started, result.message);
    throw result;
  }
  const message = (result as Error).message;
  base.services.reporter.warn(message.replace(/^.*? was interrupted(; )?/, '') || 'nothing had changed yet');
  await recoveryHistory(ctx, 'undone', started, message);
  return 'undone';
}

async function recoveryHistory(ctx: StepContext, result: 'completed' | 'undone', started: number, message?: string): Promise<void> {
  await appendHistory(ctx.layout, {
    at: new Date(ctx.services.clock.now()).toISOString(),
    op: 'recover',
    from: ctx.journal.from,
    to: ctx.journal.to,
    result,
    durationMs: ctx.services.clock.now() - started,
    ...(message ? { message } : {}),
    steps: ctx.journal.steps.map((r) => ({ kind: r.step.kind, outcome: r.status })),
  }).catch(() => {});
}
