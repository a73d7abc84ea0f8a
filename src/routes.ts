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
/**
 * A body over BODY_LIMIT_BYTES is read only when it declares its length, up to LARGE_BODY_MAX_BYTES, and while the
 * large bodies being read together stay within LARGE_BODY_POOL_BYTES; else 413. ZITADEL's encoder writes `<`, `>`
 * and `&` as six bytes each, so forwarded headers crafted of them can push a real payload past 64 KiB (and a JWE of it
 * further): refusing it would leave that login unenforced. The pool keeps what a flood of large forged bodies can
 * hold to 4 MiB on top of 400 x 64 KiB. docs/performance.md.
 */
export const LARGE_BODY_MAX_BYTES = 256 * 1024;
export const LARGE_BODY_POOL_BYTES = 4 * 1024 * 1024;
