import { Code, ConnectError } from '@connectrpc/connect';
import t from 'tap';
import { connectionFailureOf, isProtocolFailure } from '../../src/zitadel/protocol-failure.js';

t.test('a broken HTTP/2 protocol is recognised; an Internal answered by ZITADEL is not', async (t) => {
  const nodeError = Object.assign(new Error('Protocol error'), { code: 'ERR_HTTP2_ERROR' });
  t.ok(isProtocolFailure(new ConnectError('Protocol error', Code.Internal, undefined, undefined, nodeError)), 'ERR_HTTP2_ERROR underneath');
  t.ok(isProtocolFailure(new ConnectError('http/2 stream closed with error code PROTOCOL_ERROR (0x1)', Code.Internal)), 'a stream reset');
  t.notOk(isProtocolFailure(new ConnectError('database is down', Code.Internal)), "ZITADEL's own Internal stays what it is");
  t.notOk(isProtocolFailure(new ConnectError('Protocol error', Code.Canceled, undefined, undefined, nodeError)), 'only Internal is re-coded');
  t.notOk(isProtocolFailure(nodeError), 'not a ConnectError');
});

t.test('a TLS connection that failed before any answer is recognised as such', async (t) => {
  const failure = (code: string) => new ConnectError('x', Code.Internal, undefined, undefined, Object.assign(new Error(code), { code }));
  for (const code of ['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'ERR_SSL_WRONG_VERSION_NUMBER']) {
    t.same(connectionFailureOf(failure(code)), { kind: 'tls', code }, code);
  }
  t.equal(connectionFailureOf(failure('ECONNREFUSED')), undefined, 'other causes are not TLS (and are Unavailable already)');
});
