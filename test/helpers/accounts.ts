/** Real unprivileged accounts for "another user" and `User=` tests, named so that parallel runs never collide. */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';

export function createAccount(prefix = 'cutover-t'): string {
  const name = `${prefix}${randomBytes(4).toString('hex')}`;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim()}`);
  return name;
}

/** Remove the account and its group (userdel removes a private group itself; groupdel any left). */
export function removeAccount(name: string): void {
  const u = spawnSync('userdel', [name], { encoding: 'utf8' });
  const g = spawnSync('getent', ['group', name]).status === 0 ? spawnSync('groupdel', [name], { encoding: 'utf8' }) : undefined;
  const problems = [u.status === 0 ? '' : `userdel ${name}: ${u.stderr.trim()}`, !g || g.status === 0 ? '' : `groupdel ${name}: ${g.stderr.trim()}`].filter(
    Boolean,
  );
  if (problems.length) throw new Error(problems.join('; '));
}

export function idsOf(name: string): { uid: number; gid: number } {
  const f = spawnSync('getent', ['passwd', name], { encoding: 'utf8' }).stdout.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]) };
}
