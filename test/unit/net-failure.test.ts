import t from 'tap';
import { describeFetchFailure, fetchFailureReason, safeUrl } from '../../src/net-failure.js';

/** What undici throws: TypeError "fetch failed" with the reason in `cause`. */
const fetchFailed = (cause: Error) => Object.assign(new TypeError('fetch failed'), { cause });
const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

t.test('safeUrl keeps scheme, host, port and path only', async (t) => {
  t.equal(safeUrl('https://user:secret@zitadel.example.com:8443/v2/x?token=abc#frag'), 'https://zitadel.example.com:8443/v2/x');
  t.equal(safeUrl('not a url'), '(an invalid URL)');
});

t.test('each cause in words, with its code', async (t) => {
  t.match(fetchFailureReason(fetchFailed(withCode('connect ECONNREFUSED 127.0.0.1:8080', 'ECONNREFUSED'))), /^connection refused \(ECONNREFUSED\)/);
  t.match(fetchFailureReason(fetchFailed(withCode('getaddrinfo ENOTFOUND x', 'ENOTFOUND'))), /^host not found \(ENOTFOUND\)/);
  t.match(fetchFailureReason(fetchFailed(withCode('self-signed', 'DEPTH_ZERO_SELF_SIGNED_CERT'))), /TLS failed \(DEPTH_ZERO_SELF_SIGNED_CERT\).*NODE_EXTRA_CA_CERTS/);
  // A host with several addresses: the codes sit in an AggregateError.
  const aggregate = new AggregateError([withCode('connect ECONNREFUSED ::1:8080', 'ECONNREFUSED')], 'all failed');
  t.match(fetchFailureReason(fetchFailed(aggregate)), /ECONNREFUSED/);
  t.match(fetchFailureReason(Object.assign(new Error('signal timed out'), { name: 'TimeoutError' })), /no answer in time/);
  t.match(fetchFailureReason(fetchFailed(withCode('weird', 'EWEIRD'))), /^EWEIRD: weird$/);
});

t.test('a port the Fetch standard blocks is named as such', async (t) => {
  t.match(fetchFailureReason(fetchFailed(new Error('bad port')), 'http://127.0.0.1:6000/'), /port 6000 \(a "bad port"/);
});

t.test('credentials quoted by an error message are cut out', async (t) => {
  const error = new TypeError('Request cannot be constructed from a URL that includes credentials: http://user:hunter2@127.0.0.1:8080/');
  const line = describeFetchFailure('http://user:hunter2@127.0.0.1:8080/', error);
  t.notMatch(line, /hunter2|user:/);
  t.match(line, /^http:\/\/127\.0\.0\.1:8080\/ could not be reached/);
});
