#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
import { CutoverError } from '../errors.ts';
import { READ_AT_STARTUP, scrubEnvironment } from '../system/commands.ts';
import { inExecutable } from '../system/embedded.ts';
import { reportFailure } from './exit.ts';
import { main, programName } from './main.ts';

// Under root, what the environment may change is fixed here (and, before Node starts, by the
// launcher): see docs/configuration.md, "Environment".
const removed = scrubEnvironment();

if (inExecutable() && removed.some((name) => READ_AT_STARTUP.has(name))) {
  // The single executable has no launcher to unset these before Node starts, and Node has already
  // read them (extra CA certificates, OpenSSL's config, the loader's preload): run again, once,
  // with the scrubbed environment, and exit as that run exits. NODE_OPTIONS needs none of this:
  // the executable is built to ignore it (scripts/build-exe.ts).
  // argv0 keeps the name it was invoked by, which names the app (/usr/local/bin/demo → demo).
  const r = spawnSync(process.execPath, process.argv.slice(2), { stdio: 'inherit', env: process.env, argv0: process.argv[1] });
  if (r.error) {
    const started = removed.filter((n) => READ_AT_STARTUP.has(n)).join(', ');
    process.exitCode = reportFailure(
      new CutoverError('E_INTERNAL', `cannot run ${process.execPath} again without ${started}: ${r.error.message}`, {
        hint: `unset ${started} and run it again`,
        cause: r.error,
      }),
      { prog: programName(process.argv[1], process.env), json: process.argv.includes('--json'), verbose: false },
    );
  } else {
    if (r.signal) process.kill(process.pid, r.signal);
    process.exitCode = r.status ?? 1;
  }
} else {
  void main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
