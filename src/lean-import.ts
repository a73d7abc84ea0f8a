import { createRequire } from 'node:module';

/**
 * Imports the service's module graph without loading Node's bundled undici (93.8 -> 91.6 MB idle RSS, measured on
 * Node 26, BENCHMARKS.md); the service needs it only for fetch (web keys, eviction events), which loads it when first called.
 *
 * Why: `node:http` exposes `WebSocket`, `CloseEvent` and `MessageEvent` as lazy getters that load undici. The CommonJS
 * `require('node:http')` leaves them alone, but the first ES `import` of `node:http` anywhere in the process
 * (`@connectrpc/connect-node` does `import * as http from "node:http"`, so does our metrics server) builds the module
 * namespace by reading every export, getters included, and so loads undici at start. While `load` runs, those three
 * exports are plain `undefined` values, so the namespace is built without touching undici; afterwards the getters are
 * put back, so `require('node:http').WebSocket` works as before (only an ES import of those three names from
 * `node:http` made during `load` would see `undefined`; the service has none). test/e2e/module-loading.test.ts checks
 * that the service process does not load undici.
 */
const LAZY_HTTP_EXPORTS = ['WebSocket', 'CloseEvent', 'MessageEvent'] as const;

export async function importWithoutEagerUndici<T>(load: () => Promise<T>): Promise<T> {
  const http = createRequire(import.meta.url)('node:http') as Record<string, unknown>;
  const saved = new Map<string, PropertyDescriptor>();
  for (const name of LAZY_HTTP_EXPORTS) {
    const descriptor = Object.getOwnPropertyDescriptor(http, name);
    // Only a configurable lazy getter is swapped: on a Node without it there is nothing to do.
    if (!descriptor?.get || !descriptor.configurable) continue;
    saved.set(name, descriptor);
    Object.defineProperty(http, name, { configurable: true, enumerable: descriptor.enumerable ?? true, writable: true, value: undefined });
  }
  try {
    return await load();
  } finally {
    for (const [name, descriptor] of saved) Object.defineProperty(http, name, descriptor);
  }
}
