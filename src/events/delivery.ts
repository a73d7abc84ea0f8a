import type { Logger } from 'pino';
import type { EventsConfig } from '../config.js';
import type { ActionReporter, EnforcementAction } from '../enforcement/ports.js';
import type { Metrics } from '../metrics.js';
import { EventSigner, newEventId, sendSigned, type SendResult } from './send.js';

/**
 * Eviction events to the application (EVENTS_URL), at least once while the process lives: `report` only queues (the
 * webhook's answer never waits for a delivery); a small pool of workers POSTs each event, signed per Standard
 * Webhooks, and retries a failed one with exponential backoff and jitter until EVENTS_RETRY_FOR has passed since it
 * was queued: the last attempt is scheduled at that deadline (never a backoff step past it), and the event is given up
 * only when that attempt fails. The queue is bounded (EVENTS_QUEUE_MAX): an event beyond it is dropped, counted and
 * logged. On shutdown, every pending event is tried again at once within the window; what remains is logged. Every
 * drop line names the event id, its type, user id and session id (never a secret): what the app team needs to end
 * those app sessions by hand.
 */

/** Between two attempts of one event while the service stops. */
const SHUTDOWN_RETRY_MS = 500;

/** Events named per shutdown log line: more are logged on further lines (every id stays in the log, no line unbounded). */
export const SHUTDOWN_LOG_CHUNK = 1000;

const OUTCOMES = ['sent', 'failed'] as const;
const DROP_REASONS = ['expired', 'overflow', 'shutdown'] as const;

export interface EventBody {
  type: EnforcementAction['type'] | 'test';
  /** When it happened (RFC 3339, UTC). */
  timestamp: string;
  data: Record<string, unknown>;
}

/** The JSON body of an action's event: ids, the device's user agent, why, and the limit. Nothing secret. */
export function eventBody(action: EnforcementAction): EventBody {
  return {
    type: action.type,
    timestamp: new Date(action.at).toISOString(),
    data: {
      userId: action.userId,
      orgId: action.orgId ?? null,
      sessionId: action.sessionId,
      userAgent: { description: action.userAgent.description ?? null, fingerprintId: action.userAgent.fingerprintId ?? null },
      reason: action.reason,
      limit: action.limit,
      limitSource: action.limitSource,
      ...(action.type === 'session.evicted' ? { causedBySessionId: action.causedBySessionId ?? null } : {}),
    },
  };
}

export type DeliveryOutcome =
  | { outcome: 'sent'; id: string; type: string; attempt: number; status: number }
  | { outcome: 'failed'; id: string; type: string; attempt: number; status: number | undefined; retryInMs: number | undefined }
  | { outcome: 'dropped'; id: string; type: string; reason: 'expired' | 'overflow' | 'shutdown' };

/** Schedules `run` after `ms`; returns how to cancel it. Injectable so tests fire retries themselves (no sleeps). */
export type Schedule = (run: () => void, ms: number) => () => void;
const realSchedule: Schedule = (run, ms) => {
  const timer = setTimeout(run, ms);
  // A retry waiting for hours must not keep a stopping process alive.
  timer.unref();
  return () => clearTimeout(timer);
};

const keepAliveSchedule: Schedule = (run, ms) => {
  const timer = setTimeout(run, ms);
  return () => clearTimeout(timer);
};

export interface DeliveryOptions extends EventsConfig {
  logger: Pick<Logger, 'info' | 'warn' | 'error' | 'debug'>;
  metrics?: Pick<Metrics, 'events' | 'eventsQueue'> | undefined;
  now?: () => number;
  random?: () => number;
  schedule?: Schedule;
  /** Deadline of one POST (default 10 s). */
  attemptTimeoutMs?: number;
  /** First retry after about this (default 1 s), doubling up to `maxDelayMs` (default 10 min). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** POSTs in flight at once (default 4). */
  concurrency?: number;
  /** Told of every attempt's outcome (tests await these instead of sleeping). */
  observe?: (outcome: DeliveryOutcome) => void;
}

/** Who an event is about, for the log lines of a failure or a drop (ids only). */
interface Subject {
  userId: string | undefined;
  sessionId: string | undefined;
}

function subjectOf(event: EventBody): Subject {
  const id = (value: unknown) => (typeof value === 'string' ? value : undefined);
  return { userId: id(event.data.userId), sessionId: id(event.data.sessionId) };
}

interface Pending extends Subject {
  id: string;
  type: EventBody['type'];
  body: string;
  queuedAt: number;
  attempts: number;
  /** When the next attempt is due. */
  dueAt: number;
  inFlight: boolean;
  cancelTimer: (() => void) | undefined;
}

export class EventDelivery implements ActionReporter {
  readonly #options: DeliveryOptions;
  readonly #signer: EventSigner;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #schedule: Schedule;
  readonly #attemptTimeoutMs: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #concurrency: number;
  /** In queueing order: the first is the oldest. */
  readonly #pending = new Map<string, Pending>();
  #inFlight = 0;
  #stopping = false;
  #idle: (() => void)[] = [];

  constructor(options: DeliveryOptions) {
    this.#options = options;
    this.#signer = new EventSigner(options.secret);
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#schedule = options.schedule ?? realSchedule;
    this.#attemptTimeoutMs = options.attemptTimeoutMs ?? 10_000;
    this.#baseDelayMs = options.baseDelayMs ?? 1000;
    this.#maxDelayMs = options.maxDelayMs ?? 600_000;
    this.#concurrency = options.concurrency ?? 4;
    if (options.metrics) {
      options.metrics.eventsQueue.source = () => ({ depth: this.depth, oldestPendingSeconds: this.oldestPendingSeconds });
      // Every series an alert reads exists at 0 from the start: Prometheus's increase() ignores a counter's first
      // sample, so a series born at the first drop would hide that drop from SessionLimiterEventsDropped.
      for (const type of options.types) {
        for (const outcome of OUTCOMES) options.metrics.events.inc({ type, outcome }, 0);
        for (const reason of DROP_REASONS) options.metrics.events.inc({ type, outcome: 'dropped', reason }, 0);
      }
    }
  }

  /** Events not yet delivered (waiting, in flight or between retries). */
  get depth(): number {
    return this.#pending.size;
  }

  /** Age of the oldest undelivered event, in seconds (0 when none). */
  get oldestPendingSeconds(): number {
    const oldest = this.#pending.values().next().value;
    return oldest ? Math.max(0, (this.#now() - oldest.queuedAt) / 1000) : 0;
  }

  /** The enforcer's port: queues the action's event if its type is wanted. Returns at once, never throws. */
  report(action: EnforcementAction): void {
    if (!this.#options.types.has(action.type)) return;
    this.enqueue(eventBody(action));
  }

  /** Queues one event; returns its id (the `webhook-id` of every attempt), or undefined when the queue was full. */
  enqueue(event: EventBody): string | undefined {
    const id = newEventId();
    if (this.#stopping || this.#pending.size >= this.#options.queueMax) {
      const reason = this.#stopping ? 'shutdown' : 'overflow';
      this.#count(event.type, 'dropped', reason);
      this.#options.logger.error(
        { eventId: id, type: event.type, ...subjectOf(event), queueMax: this.#options.queueMax, reason },
        reason === 'overflow'
          ? 'eviction event dropped: the delivery queue is full (EVENTS_QUEUE_MAX); check that EVENTS_URL answers'
          : 'eviction event dropped: the service is shutting down',
      );
      this.#options.observe?.({ outcome: 'dropped', id, type: event.type, reason });
      return undefined;
    }
    const now = this.#now();
    this.#pending.set(id, {
      id,
      type: event.type,
      ...subjectOf(event),
      body: JSON.stringify(event),
      queuedAt: now,
      attempts: 0,
      dueAt: now,
      inFlight: false,
      cancelTimer: undefined,
    });
    this.#pump();
    return id;
  }

  /**
   * Gives every pending event a last chance until `deadline` (epoch ms): retries wait no longer, attempts run as
   * soon as a worker is free. Then logs what remains, with the event ids, and counts it dropped.
   */
  async shutdown(deadline: number): Promise<void> {
    this.#stopping = true;
    for (const event of this.#pending.values()) {
      event.cancelTimer?.();
      event.cancelTimer = undefined;
      event.dueAt = this.#now();
    }
    this.#pump();
    if (this.#pending.size > 0) {
      const left = deadline - this.#now();
      let cancel: (() => void) | undefined;
      await new Promise<void>((resolve) => {
        this.#idle.push(resolve);
        // A timer that keeps the process alive: the retries' timers do not.
        cancel = left > 0 ? (this.#options.schedule ?? keepAliveSchedule)(resolve, left) : (resolve(), undefined);
      });
      cancel?.();
    }
    const remaining = [...this.#pending.values()];
    if (remaining.length > 0) {
      for (const event of remaining) {
        this.#count(event.type, 'dropped', 'shutdown');
        this.#options.observe?.({ outcome: 'dropped', id: event.id, type: event.type, reason: 'shutdown' });
      }
      // At most SHUTDOWN_LOG_CHUNK events a line, as many lines as needed: each id stays in the log for reconciliation.
      const parts = Math.ceil(remaining.length / SHUTDOWN_LOG_CHUNK);
      for (let part = 0; part < parts; part++) {
        const chunk = remaining.slice(part * SHUTDOWN_LOG_CHUNK, (part + 1) * SHUTDOWN_LOG_CHUNK);
        this.#options.logger.error(
          {
            events: chunk.map((event) => ({ eventId: event.id, type: event.type, userId: event.userId, sessionId: event.sessionId })),
            count: remaining.length,
            ...(parts > 1 ? { part: part + 1, parts } : {}),
          },
          'eviction events not delivered at shutdown: not confirmed by the receiver (no 2xx): it may have got some of them; ' +
            'hand these ids to the app team (receivers deduplicate on webhook-id)',
        );
      }
      this.#pending.clear();
    } else {
      this.#options.logger.info('every eviction event was delivered before shutdown');
    }
  }

  /** Starts attempts for due events while workers are free; schedules a wake-up for the next one due. */
  #pump(): void {
    for (const event of this.#pending.values()) {
      if (this.#inFlight >= this.#concurrency) return;
      if (event.inFlight || event.cancelTimer) continue;
      const wait = event.dueAt - this.#now();
      if (wait > 0) {
        event.cancelTimer = this.#schedule(() => {
          event.cancelTimer = undefined;
          event.dueAt = Math.min(event.dueAt, this.#now());
          this.#pump();
        }, wait);
        continue;
      }
      void this.#attempt(event);
    }
  }

  async #attempt(event: Pending): Promise<void> {
    event.inFlight = true;
    event.attempts += 1;
    this.#inFlight += 1;
    let result: SendResult;
    try {
      result = await sendSigned(this.#options.url, this.#signer, event.id, event.body, new Date(this.#now()), this.#attemptTimeoutMs);
    } finally {
      this.#inFlight -= 1;
      event.inFlight = false;
    }
    const { logger } = this.#options;
    if (result.status !== undefined && result.status >= 200 && result.status < 300) {
      this.#pending.delete(event.id);
      this.#count(event.type, 'sent');
      logger.debug({ eventId: event.id, type: event.type, attempt: event.attempts, status: result.status }, 'eviction event delivered');
      this.#options.observe?.({ outcome: 'sent', id: event.id, type: event.type, attempt: event.attempts, status: result.status });
    } else {
      this.#count(event.type, 'failed');
      const stopping = this.#stopping;
      const now = this.#now();
      const deadline = event.queuedAt + this.#options.retryForMs;
      // Given up only once an attempt at (or after) the deadline failed; the last retry lands at the deadline, not a
      // backoff step past it. While stopping, retries come quicker: the shutdown window is all that is left.
      const expired = !stopping && now >= deadline;
      const delay = stopping ? Math.min(this.#backoff(event.attempts), SHUTDOWN_RETRY_MS) : Math.min(this.#backoff(event.attempts), deadline - now);
      const answer = result.status !== undefined ? `answered ${result.status}` : `could not be reached (${result.error})`;
      if (expired) {
        this.#pending.delete(event.id);
        this.#count(event.type, 'dropped', 'expired');
        logger.error(
          { eventId: event.id, type: event.type, userId: event.userId, sessionId: event.sessionId, attempts: event.attempts, status: result.status },
          `eviction event given up: EVENTS_URL ${answer}, and EVENTS_RETRY_FOR has passed since it was queued`,
        );
      } else {
        event.dueAt = now + delay;
        // The first failure of an event is worth a warning; its retries are routine until it is given up.
        (event.attempts === 1 ? logger.warn : logger.debug).call(
          logger,
          { eventId: event.id, type: event.type, userId: event.userId, sessionId: event.sessionId, attempt: event.attempts, status: result.status, retryInMs: delay },
          `eviction event not delivered: EVENTS_URL ${answer}; retrying with backoff`,
        );
      }
      this.#options.observe?.({
        outcome: 'failed',
        id: event.id,
        type: event.type,
        attempt: event.attempts,
        status: result.status,
        retryInMs: expired ? undefined : delay,
      });
      if (expired) this.#options.observe?.({ outcome: 'dropped', id: event.id, type: event.type, reason: 'expired' });
    }
    if (this.#pending.size === 0) this.#wakeIdle();
    this.#pump();
  }

  #wakeIdle(): void {
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }

  /** Exponential backoff with equal jitter: half of the step, plus up to the other half at random. */
  #backoff(attempt: number): number {
    const step = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    return Math.round(step / 2 + (step / 2) * this.#random());
  }

  #count(type: string, outcome: 'sent' | 'failed' | 'dropped', reason?: 'expired' | 'overflow' | 'shutdown'): void {
    this.#options.metrics?.events.inc({ type, outcome, ...(reason ? { reason } : {}) });
  }
}
