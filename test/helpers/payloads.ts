import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CREATE_SESSION } from '../../src/payload.js';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/payloads/', import.meta.url));

export function fixtureNames(): string[] {
  return readdirSync(FIXTURE_DIR).filter((name) => name.endsWith('.json')).sort();
}

/** A payload fixture as an object (the placeholders stay in). */
export function loadFixture(name: string): Record<string, any> {
  const file = name.endsWith('.json') ? name : `${name}.json`;
  return JSON.parse(readFileSync(new URL(file, `file://${FIXTURE_DIR}`), 'utf8'));
}

/** A fixture pointed at another session: `response.sessionId` for CreateSession, `request.sessionId` for SetSession. */
export function fixtureFor(name: string, sessionId: string, edit?: (payload: Record<string, any>) => void): string {
  const payload = loadFixture(name);
  if (payload.fullMethod === CREATE_SESSION) payload.response.sessionId = sessionId;
  else payload.request.sessionId = sessionId;
  edit?.(payload);
  return JSON.stringify(payload);
}
