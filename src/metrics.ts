import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The service's Prometheus metrics, on a registry of its own (GET /metrics). */
export interface Metrics {
  registry: Registry;
  /** Webhook requests by outcome (enforced, skipped, ignored, rejected, failed) and error code. */
  webhookRequests: Counter<'outcome' | 'code'>;
  sessionsEvicted: Counter;
  /** Expired sessions deleted (PRUNE_EXPIRED), counted apart from evictions. */
  sessionsPruned: Counter;
  /** Logins refused (ON_LIMIT=deny-new). */
  loginsDenied: Counter;
  /** What dry run would have done: evicted, denied, pruned. */
  dryRunActions: Counter<'action'>;
  /** Active sessions a user held when an enforcement looked (before evicting). */
  activeSessions: Histogram;
  enforcementDuration: Histogram;
  /** ZITADEL calls by gRPC method and result (`ok` or the gRPC code). */
  zitadelCalls: Counter<'method' | 'result'>;
  zitadelCallDuration: Histogram<'method'>;
  /** ZITADEL calls retried within an enforcement's budget, by method. */
  zitadelRetries: Counter<'method'>;
  /** Enforcements that ran without the cross-replica lock because Redis was unreachable. */
  lockFallbacks: Counter;
  /** Fetches of the instance's web keys (JWT/JWE payloads) by outcome (ok, failed). */
  jwksFetches: Counter<'outcome'>;
  /**
   * Eviction events by type and outcome: `sent` (2xx), `failed` (an attempt failed; retried or given up), `dropped`
   * (given up: `reason` expired (past EVENTS_RETRY_FOR), overflow (queue full) or shutdown).
   */
  events: Counter<'type' | 'outcome' | 'reason'>;
  /** What the two queue gauges read when scraped (set by the events delivery; none: 0). */
  eventsQueue: { source: (() => { depth: number; oldestPendingSeconds: number }) | undefined };
  /** 1 when /readyz would answer ready (ZITADEL answers), else 0: alerts cannot read /readyz. */
  ready: Gauge;
  /** Feeds `ready` from the readiness check /readyz answers with; it is asked at each scrape. */
  reportReadiness(check: () => Promise<{ ready: boolean }>): void;
}

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const eventsQueue: Metrics['eventsQueue'] = { source: undefined };
  new Gauge({
    name: 'session_limiter_events_queue_depth',
    help: 'Eviction events waiting for delivery (new or between retries)',
    registers,
    collect() {
      this.set(eventsQueue.source?.().depth ?? 0);
    },
  });
  new Gauge({
    name: 'session_limiter_events_oldest_pending_seconds',
    help: 'Age of the oldest eviction event not yet delivered (0 when none waits)',
    registers,
    collect() {
      this.set(eventsQueue.source?.().oldestPendingSeconds ?? 0);
    },
  });
  let readiness: (() => Promise<{ ready: boolean }>) | undefined;
  return {
    eventsQueue,
    events: new Counter({
      name: 'session_limiter_events_total',
      help: 'Eviction events by type and outcome: sent, failed (an attempt failed), dropped (reason: expired, overflow, shutdown)',
      labelNames: ['type', 'outcome', 'reason'],
      registers,
    }),
    registry,
    reportReadiness(check) {
      readiness = check;
    },
    ready: new Gauge({
      name: 'session_limiter_ready',
      help: '1 when /readyz answers ready (ZITADEL answers), else 0; evaluated at each scrape like /readyz',
      registers,
      // The same check as /readyz: a fresh answer from ZITADEL, or a probe shared with /readyz (at most one per
      // 5 s, bounded by ZITADEL_TIMEOUT_MS). Without a check (a bare app in tests) it stays unset: 0.
      async collect() {
        if (readiness) this.set((await readiness()).ready ? 1 : 0);
      },
    }),
    webhookRequests: new Counter({
      name: 'session_limiter_webhook_requests_total',
      help: 'Webhook requests by outcome (enforced, skipped, ignored, rejected, failed) and error code',
      labelNames: ['outcome', 'code'],
      registers,
    }),
    sessionsEvicted: new Counter({
      name: 'session_limiter_sessions_evicted_total',
      help: 'Sessions deleted because their user was over the limit',
      registers,
    }),
    sessionsPruned: new Counter({
      name: 'session_limiter_sessions_pruned_total',
      help: 'Expired sessions deleted (PRUNE_EXPIRED)',
      registers,
    }),
    loginsDenied: new Counter({
      name: 'session_limiter_logins_denied_total',
      help: 'Logins refused because they would exceed the limit (ON_LIMIT=deny-new)',
      registers,
    }),
    dryRunActions: new Counter({
      name: 'session_limiter_dry_run_actions_total',
      help: 'What DRY_RUN would have done, by action (evicted, denied, pruned); nothing was deleted',
      labelNames: ['action'],
      registers,
    }),
    activeSessions: new Histogram({
      name: 'session_limiter_active_sessions',
      help: 'Active sessions of the user seen by each enforcement, before evicting',
      buckets: [1, 2, 3, 4, 5, 10, 20, 50, 100],
      registers,
    }),
    enforcementDuration: new Histogram({
      name: 'session_limiter_enforcement_duration_seconds',
      help: 'Time from a verified webhook to the limit holding, including ZITADEL calls',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    zitadelCalls: new Counter({
      name: 'session_limiter_zitadel_calls_total',
      help: 'ZITADEL API calls by method and result (ok or the gRPC code)',
      labelNames: ['method', 'result'],
      registers,
    }),
    zitadelRetries: new Counter({
      name: 'session_limiter_zitadel_retries_total',
      help: 'ZITADEL calls retried (Unavailable, ResourceExhausted, DeadlineExceeded, resets) by method',
      labelNames: ['method'],
      registers,
    }),
    lockFallbacks: new Counter({
      name: 'session_limiter_lock_fallbacks_total',
      help: 'Enforcements run without the cross-replica Redis lock because Redis was unreachable',
      registers,
    }),
    jwksFetches: new Counter({
      name: 'session_limiter_jwks_fetches_total',
      help: 'Fetches of the instance web keys (<ZITADEL_URL>/oauth/v2/keys) for JWT/JWE payloads, by outcome (ok, failed)',
      labelNames: ['outcome'],
      registers,
    }),
    zitadelCallDuration: new Histogram({
      name: 'session_limiter_zitadel_call_duration_seconds',
      help: 'ZITADEL API call latency by method',
      labelNames: ['method'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}
