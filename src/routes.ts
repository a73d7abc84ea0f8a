/**
 * The webhook's route and body limit: a module of their own, so that the CLI (replay, demo, register's help) can
 * name the route without loading the webhook handler and, through it, the enforcer.
 */
export const WEBHOOK_PATH = '/webhooks/zitadel';
export const BODY_LIMIT_BYTES = 256 * 1024;
