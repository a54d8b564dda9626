import path from 'node:path';

/** Every path cutover touches under an install root, in one place. */
export interface Layout {
  root: string;
  releases: string;
  current: string;
  runtime: string;
  state: string;
  lock: string;
  staging: string;
  downloads: string;
  trash: string;
  stateFile: string;
  historyFile: string;
  tufCache: string;
  /** Migration logs. */
  logs: string;
}

export function layoutOf(root: string): Layout {
  const state = path.join(root, '.cutover');
  return {
    root,
    releases: path.join(root, 'releases'),
    current: path.join(root, 'current'),
    runtime: path.join(root, 'runtime'),
    state,
    lock: path.join(state, 'lock'),
    staging: path.join(state, 'staging'),
    downloads: path.join(state, 'downloads'),
    trash: path.join(state, 'trash'),
    stateFile: path.join(state, 'state.json'),
    historyFile: path.join(state, 'history.jsonl'),
    tufCache: path.join(state, 'tuf'),
    logs: path.join(state, 'logs'),
  };
}

export function releaseDir(layout: Layout, version: string): string {
  return path.join(layout.releases, `v${version}`);
}

/** Prefix of the temporary symlink created beside `current` before rename(2). */
export const CURRENT_TMP_PREFIX = '.current.tmp-';
