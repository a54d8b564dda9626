/**
 * The second half of `npm run demo`: the upgrade with the app running. As root it boots the same
 * private systemd the tests use (test/helpers/systemd.ts: PID 1 of its own namespaces, nothing of
 * the host's started), installs the example units (systemd/demo.service, demo-worker.service, as
 * an account made for the demo), and drives the real CLI inside it: the first release started and
 * gated on /health, an update that restarts the units in order, and a release that answers 500
 * rolled back by itself. Without root or systemd it says why it skips this part.
 */
import { chmodSync } from 'node:fs';
import { APP, cliIn, freePort, unitsConfig, unitFrom } from '../test/helpers/app-units.ts';
import { startSystemd, systemdAvailable } from '../test/helpers/systemd.ts';
import { World } from '../test/helpers/world.ts';
import { show, stepsIn } from './demo-steps.ts';

/** Runs the services part; resolves false when a step did not behave as expected. */
export async function servicesDemo(account: string | undefined): Promise<boolean> {
  const avail = systemdAvailable();
  if (account === undefined || !avail.ok) {
    process.stdout.write(
      `\n# (the services part, restarts, the health gate and an automatic rollback, boots a private systemd: ${account === undefined ? 'run as root (sudo npm run demo)' : (avail.why ?? 'systemd is not available')})\n`,
    );
    return true;
  }
  const sd = await startSystemd();
  const w = await World.create({ base: sd.workDir });
  try {
    // The app's account must pass through the world dir to reach its release.
    chmodSync(w.dir, 0o755);
    w.runner = cliIn(sd);
    const port = await freePort();
    w.writeConfig({
      top: unitsConfig(account, port, { timeout: '3s', interval: '500ms' }),
    });
    for (const unit of ['demo.service', 'demo-worker.service']) sd.writeUnit(unit, unitFrom(unit, w.root, port, account));
    await sd.daemonReload();
    const release = (version: string, behaviour?: object): Promise<Buffer> =>
      w.publish(version, { files: { 'server.mjs': APP, ...(behaviour ? { 'behaviour.json': JSON.stringify(behaviour) } : {}) } });
    await release('1.0.0');
    await release('1.1.0');
    await release('1.2.0', { health: 500 });
    process.stdout.write(
      `\n# --- With the app running: a private systemd (PID 1 of its own namespace), the example units as User=${account}, /health on port ${port}\n`,
    );
    const { step, failed } = stepsIn(w);
    await step('Install v1.0.0: the units start, and the update waits for /health to report it', ['update', '--version', 'v1.0.0']);
    await step('Update to v1.1.0: demo.service, then demo-worker.service, restarted in order and gated', ['update', '--version', 'v1.1.0']);
    await step('v1.2.0 answers /health with 500: the gate fails and cutover rolls back by itself (exit 8)', ['update', '--version', 'v1.2.0'], 8);
    await step('Status: back on v1.1.0, v1.2.0 marked bad', ['status']);
    const units = await sd.exec('systemctl', ['is-active', 'demo.service', 'demo-worker.service']);
    process.stdout.write('\n$ systemctl is-active demo.service demo-worker.service\n');
    show(units.stdout);
    return !failed();
  } finally {
    await sd.stop();
    await w.close();
  }
}
