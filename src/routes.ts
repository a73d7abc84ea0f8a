/**
 * The webhook's route and body limit: a module of their own, so that the CLI (replay, demo, register's help) can
 * name the route without loading the webhook handler and, through it, the enforcer.
 */
export const WEBHOOK_PATH = '/webhooks/zitadel';
/**
 * The largest body read (413 ERR_BODY_TOO_LARGE beyond). 64 KiB: the largest real payload is about 22 KiB (an IdP
 * CreateSession whose userAgent carries 16 KiB of browser headers; a passkey SetSession at its largest is 9 KiB), so
 * this is about 3 times that, and 400 bodies in flight (fly.toml's hard_limit) hold at most 25 MB. docs/performance.md.
 */
export const BODY_LIMIT_BYTES = 64 * 1024;
