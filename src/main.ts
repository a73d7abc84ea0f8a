#!/usr/bin/env node
// The service's entry point (`npm start`, the container's CMD). The service's modules are imported through
// importWithoutEagerUndici, which keeps Node's bundled undici (unused until the first fetch; about 2 MB idle RSS) from loading at start (src/lean-import.ts).
import { importWithoutEagerUndici } from './lean-import.js';

try {
  const { runService } = await importWithoutEagerUndici(() => import('./service.js'));
  await runService();
} catch (error: unknown) {
  process.stderr.write(`fatal: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
