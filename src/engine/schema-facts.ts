/** What the database is on and what an installed release runs on: read from the state and releases/. */
import type { Layout } from '../layout/paths.ts';
import { releaseDir } from '../layout/paths.ts';
import { dataContract, readReleaseManifest, type DataContract } from '../release/manifest.ts';
import type { State } from '../state/state.ts';
import type { SchemaLevel } from './plan.ts';

/** The release's data contract, or none when its release.json cannot be read (a damaged tree is caught by check-retained). */
export async function contractOf(layout: Layout, version: string): Promise<DataContract | null> {
  try {
    return dataContract(await readReleaseManifest(releaseDir(layout, version)));
  } catch {
    return null;
  }
}

export const NO_CONTRACT: DataContract = { schema: null, rollbackSafeSchema: null, migrate: null, migratePending: null, upgradeFrom: null };

/** The database as cutover recorded it, else as the current release declares it. */
export function schemaLevel(state: State, current: DataContract | null): SchemaLevel | null {
  if (state.database) return { schema: state.database.schema, rollbackSafe: state.database.rollbackSafe };
  if (current?.schema != null) return { schema: current.schema, rollbackSafe: current.rollbackSafeSchema ?? current.schema };
  return null;
}
