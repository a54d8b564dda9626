/** Every step kind's handler, in one table: the executor looks steps up here. */
import { DATA_HANDLERS } from './data-steps.ts';
import { RELEASE_HANDLERS, type Handler } from './handlers.ts';
import type { Step, StepKind } from './steps.ts';

type Handlers = { [K in StepKind]: Handler<Extract<Step, { kind: K }>> };

const HANDLERS: Handlers = { ...RELEASE_HANDLERS, ...DATA_HANDLERS };

export function handlerFor<S extends Step>(step: S): Handler<S> {
  return HANDLERS[step.kind] as unknown as Handler<S>;
}
