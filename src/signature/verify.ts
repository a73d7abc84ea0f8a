import { timingSafeEqual } from 'node:crypto';
import { startSignature } from './sign.js';

export interface ParsedSignatureHeader {
  timestamp: number;
  /** The decoded `v1` entries; entries that are not hex are skipped, as ZITADEL's own validator does. */
  signatures: Buffer[];
}

/** Why a signature is refused (the HTTP edge maps each to its catalogue code, ERR_SIGNATURE_<REASON>). */
export type SignatureFailure = 'missing' | 'malformed' | 'stale' | 'future' | 'mismatch';

/** The verdict on a signature, without throwing (forged requests are common on this path). */
export type SignatureVerdict = { valid: true; timestamp: number } | SignatureRefusal;
export type SignatureRefusal = { valid: false; reason: SignatureFailure; detail?: string };

/** A refused signature, thrown by `verifySignature` and `parseSignatureHeader`. */
export class SignatureError extends Error {
  readonly reason: SignatureFailure;
  readonly detail: string | undefined;
  constructor(reason: SignatureFailure, detail?: string) {
    super(detail ? `signature ${reason}: ${detail}` : `signature ${reason}`);
    this.name = 'SignatureError';
    this.reason = reason;
    this.detail = detail;
  }
}

const refused = (reason: SignatureFailure, detail?: string): SignatureRefusal => ({ valid: false, reason, ...(detail ? { detail } : {}) });

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const INTEGER = /^[+-]?\d+$/;

/** Parses without throwing: the parsed header, or the refusal (forged requests are common on this path). */
function parse(header: string | undefined): ParsedSignatureHeader | SignatureRefusal {
  const malformed = (detail: string) => refused('malformed', detail);
  if (header === undefined || header === '') return refused('missing');
  let timestamp: number | undefined;
  const signatures: Buffer[] = [];
  for (const pair of header.split(',')) {
    const parts = pair.split('=');
    if (parts.length !== 2) return malformed('a pair without exactly one "="');
    const [name, value] = parts as [string, string];
    if (name === 't') {
      if (!INTEGER.test(value)) return malformed('t is not an integer');
      timestamp = Number(value);
    } else if (name === 'v1' && HEX.test(value)) {
      signatures.push(Buffer.from(value, 'hex'));
    }
  }
  if (timestamp === undefined || !Number.isSafeInteger(timestamp)) return malformed('no usable t entry');
  if (signatures.length === 0) return malformed('no v1 entry');
  return { timestamp, signatures };
}

/**
 * Parses `t=<unix seconds>,v1=<hex>[,v1=<hex>...]` with the rules of ZITADEL's validator: every comma-separated
 * pair must hold exactly one `=`, `t` must be an integer, `v1` entries that are not hex are skipped and other
 * names are ignored. Throws a `SignatureError` for a header ZITADEL would refuse.
 */
export function parseSignatureHeader(header: string | undefined): ParsedSignatureHeader {
  const parsed = parse(header);
  if ('valid' in parsed) throw new SignatureError(parsed.reason, parsed.detail);
  return parsed;
}

export interface VerifyOptions {
  /** The raw body bytes as received; never a re-serialisation. */
  body: Uint8Array;
  header: string | undefined;
  /** Every key that may have signed (several during a rotation). */
  keys: readonly string[];
  /** Maximum age of a signature, in seconds (>= 1). */
  toleranceSeconds: number;
  /** Maximum clock skew into the future, in seconds; defaults to min(60, toleranceSeconds). */
  futureSkewSeconds?: number;
  /** Current time in milliseconds; injectable for tests. */
  now?: number;
}

/**
 * What the header alone decides, before any body is read: missing, malformed, stale or future; else the parsed header
 * (whether a `v1` matches needs the body). The webhook refuses such requests before buffering their body.
 */
export function checkSignatureHeader(options: Omit<VerifyOptions, 'body' | 'keys'>): ParsedSignatureHeader | SignatureRefusal {
  const parsed = parse(options.header);
  if ('valid' in parsed) return parsed;
  return outsideWindow(parsed.timestamp, options) ?? parsed;
}

/** Stale or future at `options.now`; undefined when the timestamp is within the window. */
function outsideWindow(timestamp: number, options: Omit<VerifyOptions, 'body' | 'keys' | 'header'>): SignatureRefusal | undefined {
  const nowSeconds = (options.now ?? Date.now()) / 1000;
  const futureSkew = options.futureSkewSeconds ?? Math.min(60, options.toleranceSeconds);
  if (nowSeconds - timestamp > options.toleranceSeconds) return refused('stale');
  if (timestamp - nowSeconds > futureSkew) return refused('future');
  return undefined;
}

/** A signature verified as its body streams in: `update` with each piece of the raw body, then `verdict` once. */
export interface SignatureVerifier {
  update(bytes: Uint8Array): void;
  /** Freshness at `now` (milliseconds), then whether a `v1` matches the bytes fed under any key. */
  verdict(now?: number): SignatureVerdict;
}

/**
 * Starts verifying a ZITADEL Actions v2 signature whose body is not read yet: the header's own refusal (missing,
 * malformed) at once, else a verifier fed the body's pieces as they arrive (one HMAC per key over `<t>.<body>`), whose
 * verdict checks the time window when the body is complete and compares every `v1` in constant time. `checkSignature`
 * is this verifier fed the whole body at once.
 */
export function startVerifying(options: Omit<VerifyOptions, 'body' | 'now'>): SignatureVerifier | SignatureRefusal {
  const { keys, toleranceSeconds } = options;
  // Programming errors, not refusals: dangerous settings are impossible rather than silently "no check".
  if (!(toleranceSeconds >= 1)) throw new RangeError('toleranceSeconds must be at least 1');
  if (keys.length === 0) throw new RangeError('at least one signing key is needed');
  const parsed = parse(options.header);
  if ('valid' in parsed) return parsed;
  const { timestamp, signatures } = parsed;
  const hmacs = keys.map((key) => startSignature(key, timestamp));
  return {
    update(bytes) {
      for (const hmac of hmacs) hmac.update(bytes);
    },
    verdict(now) {
      const window = outsideWindow(timestamp, { ...options, ...(now === undefined ? {} : { now }) });
      if (window) return window;
      for (const hmac of hmacs) {
        const expected = hmac.digest();
        for (const candidate of signatures) {
          if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) return { valid: true, timestamp };
        }
      }
      return refused('mismatch');
    },
  };
}

/**
 * Verifies a ZITADEL Actions v2 signature without throwing, and without knowing HTTP: the verdict says whether it is
 * valid, or why it is refused (missing, malformed, stale, future, mismatch). The webhook uses it on its hot path,
 * where forged requests are common.
 */
export function checkSignature(options: VerifyOptions): SignatureVerdict {
  const verifier = startVerifying(options);
  if ('valid' in verifier) return verifier;
  verifier.update(options.body);
  return verifier.verdict(options.now);
}

/**
 * Verifies a ZITADEL Actions v2 signature. Returns the signed timestamp, or throws a `SignatureError` whose reason
 * says why the request is refused (missing, malformed, stale, future, mismatch).
 */
export function verifySignature(options: VerifyOptions): { timestamp: number } {
  const verdict = checkSignature(options);
  if (!verdict.valid) throw new SignatureError(verdict.reason, verdict.detail);
  return { timestamp: verdict.timestamp };
}
