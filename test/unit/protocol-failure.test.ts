import { Code, ConnectError } from '@connectrpc/connect';
import t from 'tap';
import { connectionFailureOf, isProtocolFailure, protocolFailureAsUnavailable } from '../../src/zitadel/protocol-failure.js';

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

t.test("a TLS failure reads as one line with its code, without OpenSSL's dump (as the fetch-based commands say it)", async (t) => {
  const openssl =
    '006342BE787F0000:error:0A00010B:SSL routines:tls_validate_record_header:wrong version number:../deps/openssl/openssl/ssl/record/methods/tlsany_meth.c:78:\n';
  const cause = Object.assign(new Error(openssl), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
  const next = () => Promise.reject(new ConnectError(openssl, Code.Internal, undefined, undefined, cause));
  const error = await protocolFailureAsUnavailable(next as never)({} as never).then(
    () => t.fail('the call must fail') as never,
    (e: unknown) => e as ConnectError,
  );
  t.equal(error.code, Code.Unavailable);
  t.notMatch(error.rawMessage, /\n|openssl|tlsany_meth/, 'one line, no OpenSSL internals');
  t.match(error.rawMessage, /^TLS to ZITADEL_URL failed \(ERR_SSL_WRONG_VERSION_NUMBER\): .*NODE_EXTRA_CA_CERTS/);
});
