#!/usr/bin/env node
// The service's entry point (`npm start`, the container's CMD).
import { runService } from './service.js';

runService().catch((error: unknown) => {
  process.stderr.write(`fatal: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
