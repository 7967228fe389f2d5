// A TLS handshake that failed on identity rather than reachability — Node's certificate
// verification errors, the same for Kafka and PostgreSQL — in words, with the way on.
// Retrying cannot cure these, so callers raise TlsError instead of retrying.
import { causes } from '../checkpoint/errors';

const UNTRUSTED = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
]);
const NOT_VALID_NOW = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
/** OpenSSL's alerts from a server that wants (another) client certificate. */
const CLIENT_CERT_REFUSED = /^ERR_SSL_.*(BAD_CERTIFICATE|CERTIFICATE_REQUIRED|UNKNOWN_CA|CERTIFICATE_UNKNOWN)/;

/** What failed and what to do, when `err` (or a cause) is a TLS verification failure; otherwise undefined. */
export function tlsFailure(err: unknown): string | undefined {
  for (const e of causes(err) as Array<{ code?: unknown; message?: unknown }>) {
    const code = typeof e.code === 'string' ? e.code : '';
    const said = typeof e.message === 'string' ? e.message.replace(/^Connection error: /, '').trim() : code;
    if (UNTRUSTED.has(code)) {
      return `the server's certificate is not trusted (${said}): give the CA that signed it (the ssl option's ca, or sslrootcert= in a PostgreSQL URL)`;
    }
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
      return `the server's certificate does not name the host connected to (${said}): connect by a name the certificate lists, or have it reissued for this one`;
    }
    if (NOT_VALID_NOW.has(code)) return `the server's certificate is not valid now (${said}): renew it, or check this machine's clock`;
    if (CLIENT_CERT_REFUSED.test(code)) {
      return `the server refused the handshake (${said}): it requires a client certificate it trusts; give cert and key in the ssl option`;
    }
  }
  return undefined;
}
