/**
 * The migration a test release ships: an idempotent step to `schema` (PRAGMA user_version tracks
 * the level), through the sqlite3 CLI, as the app's account, against $CUTOVER_DATABASE; `head`
 * runs first and `tail` after (to misbehave on purpose).
 */
export function sqliteMigration(schema: number, sql: string, tail = '', head = ''): string {
  return `#!/bin/sh
set -eu
db="$CUTOVER_DATABASE"
mkdir -p "$(dirname "$db")"
${head}
v=$(sqlite3 "$db" 'PRAGMA user_version;')
if [ "$v" -lt ${schema} ]; then sqlite3 "$db" "BEGIN; ${sql}; PRAGMA user_version=${schema}; COMMIT;"; fi
${tail}
`;
}
