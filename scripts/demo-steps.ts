/** How `npm run demo` prints a step: the command as an operator types it, its output indented, and whether it exited as it should. */
import type { World } from '../test/helpers/world.ts';

/** `text`, indented under the command that printed it. */
export function show(text: string): void {
  const t = text.trimEnd();
  if (t) process.stdout.write(`${t.replace(/^/gm, '  ')}\n`);
}

export interface Steps {
  /** Run `demo ARGS` in `w`, print it, and note a failure when it does not exit `expectExit`. */
  step: (title: string, args: string[], expectExit?: number) => Promise<void>;
  /** Whether any step exited otherwise than expected. */
  failed: () => boolean;
}

export function stepsIn(w: World): Steps {
  let failed = false;
  return {
    step: async (title, args, expectExit = 0) => {
      process.stdout.write(`\n# ${title}\n$ sudo demo ${args.join(' ')}\n`);
      const r = await w.run(args);
      show(r.stderr);
      show(r.stdout);
      if (r.code !== expectExit) {
        failed = true;
        process.stdout.write(`  !! exit ${r.code}, expected ${expectExit}\n`);
      } else if (expectExit !== 0) {
        process.stdout.write(`  (exit ${r.code}, as expected)\n`);
      }
    },
    failed: () => failed,
  };
}
