#!/usr/bin/env node
import { scrubEnvironment } from '../system/commands.ts';
import { main } from './main.ts';

// Under root, what the environment may change is fixed here (and, before Node starts, by the
// launcher): see docs/configuration.md, "Environment".
scrubEnvironment();
process.exitCode = await main(process.argv);
