#!/usr/bin/env node
// A strict S3 front for s3rver.
//
// s3rver accepts any signature and never looks at x-amz-content-sha256,
// Content-MD5 or the x-amz-checksum-* headers, so a test that passes against it
// proves nothing about MinIO, AWS S3 or Ceph RGW, which reject such requests.
// This reverse proxy checks what those servers check and forwards only
// requests that pass:
//
//   * AWS Signature V4 in the Authorization header, recomputed with the AWS
//     SDK's own signer (@smithy/signature-v4), never with code of ours, so a
//     shared misunderstanding cannot make both sides agree;
//   * the request path must be in the encoding S3 servers re-create before
//     signing (they decode the path and encode it again), so a client that
//     signs one encoding and sends another fails here as it would there;
//   * the body's SHA-256 must equal x-amz-content-sha256 when that is a hash,
//     and its MD5 must equal Content-MD5 when sent;
//   * one x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256} header, when
//     sent, must be well formed and match the body (AWS: 400 BadDigest); the
//     PutObject and UploadPart replies carry it back, and a PutObject's
//     checksum is kept with the object (below) and answered by HeadObject and
//     GetObject asked with x-amz-checksum-mode: ENABLED;
//   * aws-chunked bodies (Content-Encoding: aws-chunked) in the three SigV4
//     streaming modes: STREAMING-UNSIGNED-PAYLOAD-TRAILER,
//     STREAMING-AWS4-HMAC-SHA256-PAYLOAD and STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER.
//     The framing is decoded (hex sizes, CRLFs, every chunk but the last at
//     least 8 KiB, the final 0-size chunk, the trailer lines), every chunk
//     signature of the signed modes is checked along its chain (and the
//     trailer's signature), the decoded length must equal
//     x-amz-decoded-content-length, and the trailing checksum named by
//     x-amz-trailer must match the decoded bytes. s3rver receives the decoded
//     body, as a plain PUT. An aws-chunked body under any other
//     x-amz-content-sha256 is refused: its framing would be stored;
//   * UNSIGNED-PAYLOAD, and a STREAMING-UNSIGNED-PAYLOAD-TRAILER body without
//     a trailing checksum, leave the body unproven: refused unless
//     --accept-unsigned-payload is given (real servers accept them; the bench
//     needs it for rclone and curl, which send UNSIGNED-PAYLOAD);
//   * a PutObject with If-None-Match: * over an existing key is refused with
//     412 PreconditionFailed and the object kept, as AWS S3 and MinIO do
//     (s3rver ignores the header and would overwrite it);
//   * a second key pair, when given (--limited-access-key), may do all but
//     create buckets: CreateBucket is AccessDenied, as for an IAM user
//     without s3:CreateBucket;
//   * with --upstream-data (s3rver's -d directory), an UploadPart or a
//     CompleteMultipartUpload of an upload s3rver no longer holds (completed
//     or aborted) is 404 NoSuchUpload, as on MinIO and AWS S3 (s3rver would
//     take the part into a new directory, and fail the completion with 500).
//
// What it does not verify is refused, never let through: SigV4a streaming
// (STREAMING-AWS4-ECDSA-P256-SHA256-*), and multipart checksums
// (CreateMultipartUpload with x-amz-checksum-algorithm, a
// CompleteMultipartUpload naming checksums) answer 501 NotImplemented;
// UploadPart's own checksum is verified like PutObject's.
//
// The checksum of a PutObject is kept as s3rver metadata under the reserved
// name x-amz-meta-strict-gateway-checksum-<algorithm>, which the gateway adds
// after verifying the body, hides from every reply, and refuses in requests:
// it lives and dies with the object's bytes (an overwrite through s3rver
// directly drops it), which a side table would not.
//
// Rejected requests get the S3 error document real servers send and one line
// on stderr; nothing of them reaches s3rver. Error codes follow AWS S3;
// --dialect minio answers MinIO's codes where the two differ (a checksum
// mismatch is 400 XAmzContentChecksumMismatch there, a malformed checksum
// header InvalidArgument, broken aws-chunked framing BadRequest).
//
//   node strict_s3_gateway.js --port P --upstream U [--access-key K --secret-key S]
//        [--limited-access-key K2 --limited-secret-key S2]
//        [--region R] [--key server.key --cert server.pem] [--modules DIR]
//        [--upstream-data DIR]
//        [--accept-unsigned-payload] [--dialect aws|minio] [--stats-port P2]
//        [--clock-offset-seconds N] [--port-file FILE]
//
// --upstream is s3rver's port (or host:port) on plain HTTP. --region, when
// given, must match the credential scope. --modules is the node_modules
// directory holding the signer (default: .deps/s3gateway/node_modules of the
// repository). --stats-port serves, on loopback, a JSON document of what the
// gateway saw: TCP connections accepted, TLS handshakes and how many of them
// resumed a session, requests by method, refusals by code
// (GET /?reset=1 answers and starts over); the bench reads it.
// --clock-offset-seconds runs the gateway on a clock that far from the
// host's, as a server whose time is off: its Date headers and its
// RequestTimeTooSkewed check both use it. --port-file writes the port it
// listens on (useful with --port 0) once it does.
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');
const zlib = require('zlib');

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const args = {
    host: '127.0.0.1',
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    modules: path.join(__dirname, '..', '..', '.deps', 's3gateway', 'node_modules'),
    acceptUnsignedPayload: false,
    dialect: 'aws',
  };
  const names = {
    '--port': 'port',
    '--upstream': 'upstream',
    '--host': 'host',
    '--access-key': 'accessKey',
    '--secret-key': 'secretKey',
    '--limited-access-key': 'limitedAccessKey',
    '--limited-secret-key': 'limitedSecretKey',
    '--upstream-data': 'upstreamData',
    '--region': 'region',
    '--key': 'key',
    '--cert': 'cert',
    '--modules': 'modules',
    '--dialect': 'dialect',
    '--stats-port': 'statsPort',
    '--clock-offset-seconds': 'clockOffsetSeconds',
    '--port-file': 'portFile',
  };
  const flags = {'--accept-unsigned-payload': 'acceptUnsignedPayload'};
  for (let i = 0; i < argv.length; i += 2) {
    if (flags[argv[i]]) {
      args[flags[argv[i]]] = true;
      i -= 1;
      continue;
    }
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) usage(`bad argument '${argv[i]}'`);
    args[name] = argv[i + 1];
  }
  if (!args.port || !args.upstream) usage('--port and --upstream are required');
  if (Boolean(args.key) !== Boolean(args.cert)) usage('--key and --cert go together');
  if (Boolean(args.limitedAccessKey) !== Boolean(args.limitedSecretKey)) {
    usage('--limited-access-key and --limited-secret-key go together');
  }
  if (args.dialect !== 'aws' && args.dialect !== 'minio') usage('--dialect is aws or minio');
  args.clockOffsetMs = Number(args.clockOffsetSeconds || 0) * 1000;
  if (!Number.isFinite(args.clockOffsetMs)) usage('--clock-offset-seconds is a number');
  const [upHost, upPort] =
      args.upstream.includes(':') ? args.upstream.split(':') : ['127.0.0.1', args.upstream];
  args.upstreamHost = upHost;
  args.upstreamPort = Number(upPort);
  return args;
}

function usage(problem) {
  process.stderr.write(
      `strict-s3-gateway: ${problem}\n` +
      'usage: strict_s3_gateway.js --port P --upstream PORT|HOST:PORT [--access-key K] ' +
      '[--secret-key S] [--limited-access-key K2 --limited-secret-key S2] [--region R] ' +
      '[--key FILE --cert FILE] [--modules DIR] [--accept-unsigned-payload] ' +
      '[--dialect aws|minio] [--stats-port P2] [--clock-offset-seconds N] [--port-file FILE]\n');
  process.exit(2);
}

const args = require.main === module ? parseArgs(process.argv.slice(2)) : null;
// How far the gateway's clock is from the host's (--clock-offset-seconds).
const clockOffsetMs = args ? args.clockOffsetMs : 0;
const modules =
    args ? args.modules : path.join(__dirname, '..', '..', '.deps', 's3gateway', 'node_modules');
const {SignatureV4} = require(path.join(modules, '@smithy', 'signature-v4'));
const {Sha256} = require(path.join(modules, '@aws-crypto', 'sha256-js'));

// ------------------------------------------------------------------ errors

class S3Error {
  constructor(status, code, message) {
    this.status = status;
    this.code = code;
    this.message = message;
  }
}

function xmlEscape(text) {
  return String(text).replace(/[<>&'"]/g, (c) => ({
                                            '<': '&lt;',
                                            '>': '&gt;',
                                            '&': '&amp;',
                                            '\'': '&apos;',
                                            '"': '&quot;',
                                          }[c]));
}

// The refusals whose code or text differ between AWS S3 and MinIO. AWS's are
// as AWS answers them (BadDigest "The SHA256 you specified did not match the
// calculated checksum.", InvalidRequest "Value for x-amz-checksum-sha256
// header is invalid.", IncompleteBody, MalformedTrailerError,
// InvalidChunkSizeError); MinIO's as its cmd/api-errors.go and
// cmd/streaming-v4-unsigned.go answer them.
const DIALECTS = {
  aws: {
    checksumMismatch: (algorithm) => new S3Error(
        400, 'BadDigest',
        `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`),
    invalidChecksumValue: (name, trailing) => new S3Error(
        400, 'InvalidRequest',
        `Value for ${name}${trailing ? ' trailing' : ''} header is invalid.`),
    malformedFraming: (detail) =>
        new S3Error(400, 'IncompleteBody', `The request body terminated unexpectedly (${detail})`),
    malformedTrailer: (detail) => new S3Error(
        400, 'MalformedTrailerError',
        'The request contained trailing data that was not well-formed or did not conform to ' +
            `our published schema (${detail}).`),
    decodedLengthMismatch: (declared, decoded) => new S3Error(
        400, 'IncompleteBody',
        'You did not provide the number of bytes specified by the Content-Length HTTP header ' +
            `(x-amz-decoded-content-length ${declared}, decoded ${decoded})`),
  },
  minio: {
    checksumMismatch: () => new S3Error(
        400, 'XAmzContentChecksumMismatch',
        'The provided \'x-amz-checksum\' header does not match what was computed.'),
    invalidChecksumValue: () => new S3Error(400, 'InvalidArgument', 'Invalid checksum provided.'),
    malformedFraming: (detail) =>
        new S3Error(400, 'BadRequest', `malformed chunked encoding (${detail})`),
    malformedTrailer: (detail) =>
        new S3Error(400, 'BadRequest', `malformed chunked encoding (${detail})`),
    decodedLengthMismatch: (declared, decoded) => decoded < declared ?
        new S3Error(
            400, 'IncompleteBody',
            'You did not provide the number of bytes specified by the Content-Length HTTP header.') :
        new S3Error(400, 'ExcessData', 'More data provided than indicated content length'),
  },
};

// -------------------------------------------------------------- checksums

// A reflected CRC table (polynomial in reversed form) for 32-bit CRCs.
function crc32Table(poly) {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ poly : crc >>> 1;
    table[i] = crc >>> 0;
  }
  return table;
}

const CRC32C_TABLE = crc32Table(0x82f63b78);  // Castagnoli

// CRC-64/NVME (AWS's CRC64NVME): reflected polynomial 0x9a6c9329ac4bc9b5,
// kept as two 32-bit halves (JavaScript has no fast 64-bit integers).
const CRC64_TABLE_HI = new Uint32Array(256);
const CRC64_TABLE_LO = new Uint32Array(256);
for (let i = 0; i < 256; i++) {
  let hi = 0;
  let lo = i;
  for (let k = 0; k < 8; k++) {
    const low = lo & 1;
    lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
    hi = hi >>> 1;
    if (low) {
      hi = (hi ^ 0x9a6c9329) >>> 0;
      lo = (lo ^ 0xac4bc9b5) >>> 0;
    }
  }
  CRC64_TABLE_HI[i] = hi;
  CRC64_TABLE_LO[i] = lo;
}

function crc32Hasher(table) {
  let crc = 0xffffffff;
  return {
    update(bytes) {
      for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    },
    digest() {
      const out = Buffer.alloc(4);
      out.writeUInt32BE((crc ^ 0xffffffff) >>> 0);
      return out;
    },
  };
}

// zlib's CRC-32 where Node has it (20.15 and later), the table otherwise.
const CRC32_TABLE = crc32Table(0xedb88320);
function crc32IeeeHasher() {
  if (typeof zlib.crc32 !== 'function') return crc32Hasher(CRC32_TABLE);
  let crc = 0;
  return {
    update(bytes) {
      crc = zlib.crc32(bytes, crc);
    },
    digest() {
      const out = Buffer.alloc(4);
      out.writeUInt32BE(crc >>> 0);
      return out;
    },
  };
}

function crc64NvmeHasher() {
  let hi = 0xffffffff;
  let lo = 0xffffffff;
  return {
    update(bytes) {
      for (let i = 0; i < bytes.length; i++) {
        const index = (lo ^ bytes[i]) & 0xff;
        lo = (((lo >>> 8) | (hi << 24)) ^ CRC64_TABLE_LO[index]) >>> 0;
        hi = ((hi >>> 8) ^ CRC64_TABLE_HI[index]) >>> 0;
      }
    },
    digest() {
      const out = Buffer.alloc(8);
      out.writeUInt32BE((hi ^ 0xffffffff) >>> 0, 0);
      out.writeUInt32BE((lo ^ 0xffffffff) >>> 0, 4);
      return out;
    },
  };
}

function nodeHasher(name) {
  const hash = crypto.createHash(name);
  return {
    update(bytes) {
      hash.update(bytes);
    },
    digest() {
      return hash.digest();
    },
  };
}

// The checksums S3 takes in x-amz-checksum-<name>: raw length and hasher.
// Each is checked against its published check value at start (selfCheck).
const CHECKSUMS = {
  crc32: {bytes: 4, hasher: crc32IeeeHasher},
  crc32c: {bytes: 4, hasher: () => crc32Hasher(CRC32C_TABLE)},
  crc64nvme: {bytes: 8, hasher: crc64NvmeHasher},
  sha1: {bytes: 20, hasher: () => nodeHasher('sha1')},
  sha256: {bytes: 32, hasher: () => nodeHasher('sha256')},
};
const CHECKSUM_PREFIX = 'x-amz-checksum-';
// x-amz-checksum-* headers that carry no checksum value.
const CHECKSUM_NON_VALUES =
    new Set(['x-amz-checksum-mode', 'x-amz-checksum-type', 'x-amz-checksum-algorithm']);
// Where the gateway keeps a PutObject's verified checksum (s3rver metadata).
const STORED_CHECKSUM_PREFIX = 'x-amz-meta-strict-gateway-checksum-';

function checksumOf(algorithm, bytes) {
  const hasher = CHECKSUMS[algorithm].hasher();
  hasher.update(bytes);
  return hasher.digest().toString('base64');
}

// A checksum value as S3 takes it: standard base64 of exactly the raw length.
function isChecksumValue(algorithm, value) {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) return false;
  return Buffer.from(value, 'base64').length === CHECKSUMS[algorithm].bytes;
}

// ------------------------------------------------------------- encodings

const UNRESERVED = /[A-Za-z0-9\-._~]/;

// Percent-decodes at the byte level: '%FF' stays a byte, not a UTF-8 error.
function percentDecode(text, plusIsSpace) {
  const bytes = Buffer.from(text, 'latin1');  // Node hands us the wire bytes as latin1
  const out = [];
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i];
    const hex = String.fromCharCode(bytes[i + 1] || 0, bytes[i + 2] || 0);
    if (b === 0x25 && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else if (b === 0x2b && plusIsSpace) {
      out.push(0x20);
    } else {
      out.push(b);
    }
  }
  return Buffer.from(out);
}

// S3's canonical URI: every byte but unreserved characters and '/' as %XX
// (upper-case hex). MinIO and RGW decode the received path and encode it this
// way before signing; AWS asks clients to send it this way.
function canonicalPathOf(rawPath) {
  let out = '';
  for (const b of percentDecode(rawPath, false)) {
    const c = String.fromCharCode(b);
    out += (b < 0x80 && (UNRESERVED.test(c) || c === '/')) ?
        c :
        '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

// The query as the SDK signer wants it: decoded names and values (it encodes
// them itself), repeated names as arrays. '+' is a space, as Go's
// url.ParseQuery (MinIO) reads it.
function parseQuery(rawQuery) {
  const query = {};
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = percentDecode(eq < 0 ? part : part.slice(0, eq), true).toString('utf8');
    const value = eq < 0 ? '' : percentDecode(part.slice(eq + 1), true).toString('utf8');
    if (name === '__proto__') throw new S3Error(400, 'InvalidArgument', 'unsupported query name');
    if (Object.prototype.hasOwnProperty.call(query, name)) {
      query[name] = [].concat(query[name], value);
    } else {
      query[name] = value;
    }
  }
  return query;
}

// Header values by lower-case name; repeated headers joined with ',' after
// trimming each, as SigV4 canonicalisation asks. Bytes are read as UTF-8 so
// that the signer hashes the same bytes the client did.
function headerMap(rawHeaders) {
  const map = Object.create(null);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = Buffer.from(rawHeaders[i + 1], 'latin1').toString('utf8').trim();
    map[name] = name in map ? `${map[name]},${value}` : value;
  }
  return map;
}

// ------------------------------------------------------------- signature

const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;
const MAX_SKEW_MS = 15 * 60 * 1000;  // AWS's RequestTimeTooSkewed limit

function parseAuthorization(value) {
  if (!value.startsWith('AWS4-HMAC-SHA256 ')) {
    throw new S3Error(
        400, 'InvalidRequest', 'Only the AWS4-HMAC-SHA256 Authorization header is supported');
  }
  const fields = {};
  for (const item of value.slice('AWS4-HMAC-SHA256 '.length).split(',')) {
    const eq = item.indexOf('=');
    if (eq < 0) continue;
    fields[item.slice(0, eq).trim()] = item.slice(eq + 1).trim();
  }
  const {Credential: credential, SignedHeaders: signedHeaders, Signature: signature} = fields;
  if (!credential || !signedHeaders || !signature || !/^[0-9a-f]{64}$/.test(signature)) {
    throw new S3Error(
        400, 'AuthorizationHeaderMalformed',
        'The authorization header is malformed; it needs Credential, SignedHeaders and Signature');
  }
  const scope = credential.split('/');
  if (scope.length !== 5 || scope[3] !== 's3' || scope[4] !== 'aws4_request') {
    throw new S3Error(
        400, 'AuthorizationHeaderMalformed',
        `The authorization header is malformed; bad credential scope '${
            scope.slice(1).join('/')}'`);
  }
  const [accessKey, date, region] = scope;
  return {accessKey, date, region, signedHeaders, signature};
}

// Checks the Authorization header of one request; throws S3Error when a real
// S3 server would refuse it. `request` is {method, rawPath, rawQuery, headers}
// with headers from headerMap(); `options` are {secrets, region, now}.
// Returns what the chunk signatures of a streaming body are chained to:
// {signer, seedSignature, signingDate, amzDate, scope, region, accessKey}.
async function verifySignature(request, options) {
  const {headers} = request;
  if (headers.authorization === undefined) {
    throw new S3Error(403, 'AccessDenied', 'Anonymous access is not allowed');
  }
  const auth = parseAuthorization(headers.authorization);
  const secret = options.secrets[auth.accessKey];
  if (secret === undefined) {
    throw new S3Error(
        403, 'InvalidAccessKeyId',
        'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (options.region && auth.region !== options.region) {
    throw new S3Error(
        400, 'AuthorizationHeaderMalformed',
        `The authorization header is malformed; the region '${auth.region}' is wrong; ` +
            `expecting '${options.region}'`);
  }
  const amzDate = headers['x-amz-date'];
  const parts = AMZ_DATE.exec(amzDate || '');
  const signingDate = parts &&
      new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3], +parts[4], +parts[5], +parts[6]));
  if (!signingDate || isNaN(signingDate)) {
    throw new S3Error(403, 'AccessDenied', 'AWS authentication requires a valid x-amz-date header');
  }
  if (auth.date !== amzDate.slice(0, 8)) {
    throw new S3Error(
        400, 'AuthorizationHeaderMalformed',
        'Invalid credential date. Date is not the same as X-Amz-Date.');
  }
  if (options.now !== undefined && Math.abs(options.now - signingDate) > MAX_SKEW_MS) {
    throw new S3Error(
        403, 'RequestTimeTooSkewed',
        'The difference between the request time and the current time is too large.');
  }
  if (headers['x-amz-content-sha256'] === undefined) {
    throw new S3Error(
        400, 'InvalidRequest', 'Missing required header for this request: x-amz-content-sha256');
  }

  const signed = auth.signedHeaders.split(';');
  if (!signed.includes('host')) {
    throw new S3Error(403, 'AccessDenied', 'SignedHeaders must include \'host\'');
  }
  // AWS refuses x-amz-* headers that the client did not sign.
  const unsigned =
      Object.keys(headers).filter((n) => n.startsWith('x-amz-') && !signed.includes(n));
  if (unsigned.length > 0) {
    throw new S3Error(
        403, 'AccessDenied',
        `There were headers present in the request which were not signed: ${unsigned.join(', ')}`);
  }
  // The SDK signer always derives 'date' itself and drops a given one, so a
  // request that signs Date cannot be checked exactly; our client never does.
  if (signed.includes('date')) {
    throw new S3Error(
        403, 'SignatureDoesNotMatch',
        'Signing the \'date\' header is not supported by this gateway; sign x-amz-date');
  }
  const toSign = {};
  for (const name of signed) {
    if (headers[name] === undefined) {
      throw new S3Error(
          403, 'SignatureDoesNotMatch', `Signed header '${name}' is not in the request`);
    }
    toSign[name] = headers[name];
  }

  const canonicalPath = canonicalPathOf(request.rawPath);
  if (canonicalPath !== request.rawPath) {
    throw new S3Error(
        403, 'SignatureDoesNotMatch',
        `The request path is not in S3's canonical encoding (servers sign '${canonicalPath}')`);
  }

  const signer = new SignatureV4({
    credentials: {accessKeyId: auth.accessKey, secretAccessKey: secret},
    region: auth.region,
    service: 's3',
    sha256: Sha256,
    uriEscapePath: false,  // S3: the path is encoded once, by the client, never normalised
    applyChecksum: false,  // the payload hash is the client's x-amz-content-sha256
  });
  const expected = await signer.signRequest(
      {
        method: request.method,
        protocol: 'https:',
        hostname: 'unused',  // only the signed host header counts
        path: request.rawPath,
        query: parseQuery(request.rawQuery),
        headers: toSign,
      },
      {signingDate, signableHeaders: new Set(signed)});
  const computed = parseAuthorization(expected.headers.authorization);
  const same = computed.signedHeaders === auth.signedHeaders &&
      crypto.timingSafeEqual(Buffer.from(computed.signature), Buffer.from(auth.signature));
  if (!same) {
    throw new S3Error(
        403, 'SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. ' +
            'Check your key and signing method.');
  }
  return {
    signer,
    seedSignature: computed.signature,
    signingDate,
    amzDate,
    scope: `${auth.date}/${auth.region}/s3/aws4_request`,
    region: auth.region,
    accessKey: auth.accessKey,
  };
}

// ---------------------------------------------------------------- payload

const HEX_SHA256 = /^[0-9a-f]{64}$/;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MIN_CHUNK = 8192;  // AWS: every aws-chunked chunk but the last is at least 8 KiB
const MAX_LINE = 4096;   // a chunk header or trailer line, as MinIO bounds it
const STREAMING_MODES = {
  'STREAMING-UNSIGNED-PAYLOAD-TRAILER': {signedChunks: false, trailer: true},
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD': {signedChunks: true, trailer: false},
  'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER': {signedChunks: true, trailer: true},
};

function hasQueryName(rawQuery, name) {
  return rawQuery.split('&').some((part) => part === name || part.startsWith(`${name}=`));
}

// What the body of one request must prove, read from its headers before the
// body arrives. Throws S3Error for a request real servers refuse, and for one
// whose proof the gateway cannot check (never letting it through unchecked).
// Returns {contentSha256, streaming, checksum}: the hex payload hash to
// match (or null), the aws-chunked decoding to do (or null), and the
// x-amz-checksum to verify ({algorithm, name, expected, trailing} or null).
function planPayload(request, options = {}) {
  const {headers, method, rawQuery} = request;
  const dialect = DIALECTS[options.dialect || 'aws'];
  const claimed = headers['x-amz-content-sha256'];
  const plan = {contentSha256: null, streaming: null, checksum: null};

  for (const name of Object.keys(headers)) {
    if (name.startsWith(STORED_CHECKSUM_PREFIX)) {
      throw new S3Error(
          400, 'InvalidArgument',
          `${name} is reserved: the gateway keeps verified checksums under that name`);
    }
  }

  if (claimed === 'UNSIGNED-PAYLOAD') {
    if (!options.acceptUnsignedPayload) {
      throw new S3Error(
          400, 'UnsignedPayloadRefused',
          'UNSIGNED-PAYLOAD is refused here (the body would be unproven): sign the body hash, ' +
              'or start the gateway with --accept-unsigned-payload');
    }
  } else if (STREAMING_MODES[claimed]) {
    if (method !== 'PUT') {
      throw new S3Error(
          400, 'InvalidRequest', `${claimed} is only valid for PutObject and UploadPart`);
    }
    const decoded = headers['x-amz-decoded-content-length'];
    if (decoded === undefined || !/^[0-9]{1,16}$/.test(decoded)) {
      throw new S3Error(
          411, 'MissingContentLength',
          'You must provide the Content-Length HTTP header ' +
              '(x-amz-decoded-content-length, for an aws-chunked body).');
    }
    plan.streaming =
        Object.assign({mode: claimed, decodedLength: Number(decoded)}, STREAMING_MODES[claimed]);
  } else if (claimed.startsWith('STREAMING-')) {
    throw new S3Error(
        501, 'NotImplemented',
        `${claimed} is not verified by this gateway (SigV4a and unknown streaming modes are ` +
            'refused, never let through)');
  } else if (!HEX_SHA256.test(claimed)) {
    throw new S3Error(
        400, 'InvalidArgument',
        'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a lower-case hex SHA-256');
  } else {
    plan.contentSha256 = claimed;
  }

  const md5 = headers['content-md5'];
  if (md5 !== undefined &&
      (!/^[A-Za-z0-9+/]{22}==$/.test(md5) || Buffer.from(md5, 'base64').length !== 16)) {
    throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
  // An aws-chunked body that is not declared streaming would be stored with
  // its framing (MinIO decodes by x-amz-content-sha256 alone).
  const encodings =
      (headers['content-encoding'] || '').split(',').map((e) => e.trim().toLowerCase());
  if (encodings.includes('aws-chunked') && !plan.streaming) {
    throw new S3Error(
        400, 'InvalidArgument',
        'aws-chunked encoding is not supported with the specified x-amz-content-sha256 value.');
  }

  // x-amz-checksum-<algorithm>: at most one, of a known algorithm, well formed.
  const valueHeaders = Object.keys(headers).filter(
      (name) => name.startsWith(CHECKSUM_PREFIX) && !CHECKSUM_NON_VALUES.has(name));
  for (const name of valueHeaders) {
    if (!CHECKSUMS[name.slice(CHECKSUM_PREFIX.length)]) {
      throw new S3Error(
          400, 'InvalidRequest',
          'The algorithm type you specified in x-amz-checksum- header is invalid.');
    }
  }
  const multiple = new S3Error(
      400, 'InvalidRequest',
      'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.');
  if (valueHeaders.length > 1) throw multiple;
  const trailer = headers['x-amz-trailer'];
  if (trailer !== undefined) {
    if (!plan.streaming || !plan.streaming.trailer) {
      throw new S3Error(
          400, 'InvalidRequest',
          'x-amz-trailer needs x-amz-content-sha256 STREAMING-UNSIGNED-PAYLOAD-TRAILER or ' +
              'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER');
    }
    const names = trailer.split(',').map((n) => n.trim().toLowerCase()).filter((n) => n !== '');
    for (const name of names) {
      if (!name.startsWith(CHECKSUM_PREFIX) || !CHECKSUMS[name.slice(CHECKSUM_PREFIX.length)]) {
        throw new S3Error(
            400, 'InvalidRequest',
            'The value specified in the x-amz-trailer header is not supported');
      }
    }
    if (names.length > 1 || (names.length === 1 && valueHeaders.length > 0)) throw multiple;
    if (names.length === 1) {
      plan.checksum = {
        algorithm: names[0].slice(CHECKSUM_PREFIX.length),
        name: names[0],
        expected: null,
        trailing: true,
      };
    }
  }
  if (valueHeaders.length === 1) {
    const name = valueHeaders[0];
    const algorithm = name.slice(CHECKSUM_PREFIX.length);
    if (!isChecksumValue(algorithm, headers[name])) {
      throw dialect.invalidChecksumValue(name, false);
    }
    plan.checksum = {algorithm, name, expected: headers[name], trailing: false};
  }
  const sdkAlgorithm = headers['x-amz-sdk-checksum-algorithm'];
  if (sdkAlgorithm !== undefined &&
      (!plan.checksum || plan.checksum.algorithm !== sdkAlgorithm.toLowerCase())) {
    throw new S3Error(
        400, 'InvalidRequest',
        'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or ' +
            'x-amz-trailer headers were found.');
  }
  if (plan.streaming && !plan.streaming.signedChunks && !plan.checksum &&
      !options.acceptUnsignedPayload) {
    throw new S3Error(
        400, 'UnsignedPayloadRefused',
        'STREAMING-UNSIGNED-PAYLOAD-TRAILER without a checksum (x-amz-trailer or ' +
            'x-amz-checksum-*) leaves the body unproven: refused unless the gateway runs with ' +
            '--accept-unsigned-payload');
  }

  // Multipart checksums (composite or full-object) are not kept here.
  if (method === 'POST' && hasQueryName(rawQuery, 'uploads') &&
      headers['x-amz-checksum-algorithm'] !== undefined) {
    throw new S3Error(
        501, 'NotImplemented',
        'CreateMultipartUpload with x-amz-checksum-algorithm: this gateway keeps no multipart ' +
            'checksums (each UploadPart\'s own x-amz-checksum-* is verified)');
  }
  if (method === 'POST' && hasQueryName(rawQuery, 'uploadId') &&
      (plan.checksum || headers['x-amz-checksum-type'] !== undefined)) {
    throw new S3Error(
        501, 'NotImplemented',
        'CompleteMultipartUpload with a checksum: this gateway keeps no multipart checksums');
  }
  if (plan.checksum && headers['x-amz-copy-source'] !== undefined) {
    throw new S3Error(501, 'NotImplemented', 'CopyObject with a checksum is not verified here');
  }
  return plan;
}

// Decodes an aws-chunked body as it arrives:
//   unsigned:  <hex size>\r\n<data>\r\n ... 0\r\n[<trailer>:<value>\r\n]\r\n
//   signed:    <hex size>;chunk-signature=<64 hex>\r\n<data>\r\n ...
//              0;chunk-signature=<64 hex>\r\n[<trailer>:<value>\r\n
//              x-amz-trailer-signature:<64 hex>\r\n]\r\n
// Decoded bytes go to onData; framing errors throw S3Error. The chunk
// signatures are collected here and checked afterwards (verifyChunkChain),
// because the SDK's signer answers asynchronously.
class AwsChunkedDecoder {
  constructor({signedChunks, trailerNames, dialect, onData}) {
    this.signedChunks = signedChunks;
    this.trailerNames = trailerNames;
    this.dialect = dialect;
    this.onData = onData;
    this.state = 'size';  // size, data, data-cr, data-lf, trailer, done
    this.line = [];
    this.remaining = 0;
    this.chunkHash = null;
    this.previousSize = null;
    this.chunks = [];       // {signature, sha256} of each chunk: signed mode
    this.trailers = {};     // lower-case name -> value
    this.trailerText = '';  // the trailer lines as signed: "name:value\n" each
    this.trailerSignature = null;
  }

  push(bytes) {
    let i = 0;
    while (i < bytes.length) {
      if (this.state === 'data') {
        const n = Math.min(this.remaining, bytes.length - i);
        const piece = bytes.subarray(i, i + n);
        if (this.chunkHash) this.chunkHash.update(piece);
        this.onData(piece);
        this.remaining -= n;
        i += n;
        if (this.remaining === 0) this.endChunk();
      } else if (this.state === 'data-cr' || this.state === 'data-lf') {
        const want = this.state === 'data-cr' ? 0x0d : 0x0a;
        if (bytes[i] !== want) {
          throw this.dialect.malformedFraming('chunk data is not followed by CRLF');
        }
        this.state = this.state === 'data-cr' ? 'data-lf' : 'size';
        i += 1;
      } else if (this.state === 'done') {
        throw this.dialect.malformedFraming('bytes after the final chunk and its trailer');
      } else {
        // A line: chunk header or trailer, up to CRLF.
        const b = bytes[i++];
        if (b === 0x0a) {
          if (this.line.length === 0 || this.line[this.line.length - 1] !== 0x0d) {
            throw this.dialect.malformedFraming('a line ends in LF without CR');
          }
          this.line.pop();
          const text = Buffer.from(this.line).toString('latin1');
          this.line = [];
          if (this.state === 'size') {
            this.sizeLine(text);
          } else {
            this.trailerLine(text);
          }
        } else {
          this.line.push(b);
          if (this.line.length > MAX_LINE) {
            throw this.state === 'size' ?
                this.dialect.malformedFraming('chunk header line too long') :
                this.dialect.malformedTrailer('trailer line too long');
          }
        }
      }
    }
  }

  sizeLine(text) {
    const match = this.signedChunks ?
        /^([0-9A-Fa-f]{1,16});chunk-signature=([0-9a-f]{64})$/.exec(text) :
        /^([0-9A-Fa-f]{1,16})$/.exec(text);
    if (!match) {
      throw this.dialect.malformedFraming(
          `bad chunk header '${text.slice(0, 100)}'` +
          (this.signedChunks ? ' (want <hex size>;chunk-signature=<signature>)' :
                               ' (want <hex size>)'));
    }
    const size = parseInt(match[1], 16);
    if (size !== 0 && this.previousSize !== null && this.previousSize < MIN_CHUNK) {
      throw new S3Error(
          400, 'InvalidChunkSizeError',
          `Only the last chunk is allowed to have a size less than 8192 bytes (a chunk of ` +
              `${this.previousSize} bytes was followed by another of ${size})`);
    }
    this.previousSize = size;
    this.chunkHash = this.signedChunks ? crypto.createHash('sha256') : null;
    this.chunkSignature = match[2];
    if (size === 0) {
      this.endChunk();
      this.state = 'trailer';
    } else {
      this.remaining = size;
      this.state = 'data';
    }
  }

  endChunk() {
    if (this.signedChunks) {
      this.chunks.push({signature: this.chunkSignature, sha256: this.chunkHash.digest('hex')});
    }
    if (this.state === 'data') this.state = 'data-cr';
  }

  trailerLine(text) {
    if (text === '') {
      for (const name of this.trailerNames) {
        if (this.trailers[name] === undefined) {
          throw this.dialect.malformedTrailer(
              `the trailer ${name} named by x-amz-trailer is missing`);
        }
      }
      if (this.signedChunks && this.trailerNames.length > 0 && this.trailerSignature === null) {
        throw this.dialect.malformedTrailer('x-amz-trailer-signature is missing');
      }
      this.state = 'done';
      return;
    }
    const colon = text.indexOf(':');
    if (colon <= 0) throw this.dialect.malformedTrailer(`bad trailer line '${text.slice(0, 100)}'`);
    const name = text.slice(0, colon).trim().toLowerCase();
    const value = text.slice(colon + 1).trim();
    if (this.signedChunks && name === 'x-amz-trailer-signature' && this.trailerNames.length > 0) {
      if (this.trailerSignature !== null || !/^[0-9a-f]{64}$/.test(value)) {
        throw this.dialect.malformedTrailer('bad x-amz-trailer-signature');
      }
      this.trailerSignature = value;
      return;
    }
    if (!this.trailerNames.includes(name) || this.trailers[name] !== undefined ||
        this.trailerSignature !== null) {
      throw this.dialect.malformedTrailer(`unexpected trailer '${name}'`);
    }
    this.trailers[name] = value;
    this.trailerText += `${text}\n`;
  }

  end() {
    if (this.state !== 'done') {
      throw new S3Error(
          400, 'IncompleteBody',
          `The request body terminated unexpectedly (the aws-chunked body ended ${
              this.state === 'trailer' ? 'in its trailer' : 'before its final 0-size chunk'})`);
    }
  }
}

// Checks the chain of chunk signatures of a STREAMING-AWS4-HMAC-SHA256-*
// body, as AWS documents it: each chunk's string to sign holds the previous
// signature (the seed is the request's own) and the chunk's SHA-256; the
// trailer's holds the last chunk signature and the SHA-256 of its lines. The
// HMAC and its key are the SDK signer's.
async function verifyChunkChain(decoder, seed) {
  const sign = (stringToSign) => seed.signer.sign(
      stringToSign,
      {signingDate: seed.signingDate, signingRegion: seed.region, signingService: 's3'});
  const same = (a, b) =>
      a.length === b.length && crypto.timingSafeEqual(Buffer.from(a), Buffer.from(b));
  let previous = seed.seedSignature;
  for (let n = 0; n < decoder.chunks.length; n++) {
    const chunk = decoder.chunks[n];
    const expected = await sign([
      'AWS4-HMAC-SHA256-PAYLOAD', seed.amzDate, seed.scope, previous, EMPTY_SHA256, chunk.sha256
    ].join('\n'));
    if (!same(expected, chunk.signature)) {
      throw new S3Error(
          403, 'SignatureDoesNotMatch',
          `The request signature we calculated does not match the signature you provided ` +
              `(chunk ${n + 1} of the aws-chunked body).`);
    }
    previous = expected;
  }
  if (decoder.trailerSignature !== null) {
    const trailerHash =
        crypto.createHash('sha256').update(decoder.trailerText, 'latin1').digest('hex');
    const expected = await sign(
        ['AWS4-HMAC-SHA256-TRAILER', seed.amzDate, seed.scope, previous, trailerHash].join('\n'));
    if (!same(expected, decoder.trailerSignature)) {
      throw new S3Error(
          403, 'SignatureDoesNotMatch',
          'The request signature we calculated does not match the signature you provided ' +
              '(x-amz-trailer-signature).');
    }
  }
}

// Reads one request body against its plan: hashes the bytes (decoded first
// when aws-chunked), keeps them for forwarding, and at the end says whether
// they are what the headers claimed.
class BodyVerifier {
  constructor(plan, dialect) {
    this.plan = plan;
    this.dialect = dialect;
    this.sha256 = crypto.createHash('sha256');
    this.md5 = crypto.createHash('md5');
    this.checksum = plan.checksum ? CHECKSUMS[plan.checksum.algorithm].hasher() : null;
    this.chunks = [];
    this.length = 0;
    this.error = null;
    this.decoder = plan.streaming ? new AwsChunkedDecoder({
      signedChunks: plan.streaming.signedChunks,
      trailerNames: plan.checksum && plan.checksum.trailing ? [plan.checksum.name] : [],
      dialect,
      onData: (bytes) => this.take(bytes),
    }) :
                                    null;
  }

  push(bytes) {
    if (this.error) return;
    try {
      if (this.decoder) {
        this.decoder.push(bytes);
      } else {
        this.take(bytes);
      }
    } catch (error) {
      if (!(error instanceof S3Error)) throw error;
      this.error = error;
      this.chunks = [];
    }
  }

  take(bytes) {
    this.length += bytes.length;
    if (this.plan.streaming && this.length > this.plan.streaming.decodedLength) {
      throw this.dialect.decodedLengthMismatch(this.plan.streaming.decodedLength, this.length);
    }
    this.sha256.update(bytes);
    this.md5.update(bytes);
    if (this.checksum) this.checksum.update(bytes);
    this.chunks.push(bytes);
  }

  // Resolves to {chunks, length, sha256, checksum} once the body proved
  // right; rejects with the S3Error a real server answers otherwise.
  async finish(headers, seed) {
    if (this.error) throw this.error;
    const {plan} = this;
    if (this.decoder) {
      this.decoder.end();
      if (this.length !== plan.streaming.decodedLength) {
        throw this.dialect.decodedLengthMismatch(plan.streaming.decodedLength, this.length);
      }
      if (plan.streaming.signedChunks) await verifyChunkChain(this.decoder, seed);
    }
    const sha256 = this.sha256.digest('hex');
    if (plan.contentSha256 !== null && sha256 !== plan.contentSha256) {
      throw new S3Error(
          400, 'XAmzContentSHA256Mismatch',
          'The provided \'x-amz-content-sha256\' header does not match what was computed.');
    }
    if (headers['content-md5'] !== undefined &&
        this.md5.digest('base64') !== headers['content-md5']) {
      throw new S3Error(
          400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
    }
    let checksum = null;
    if (plan.checksum) {
      const {algorithm, name} = plan.checksum;
      let expected = plan.checksum.expected;
      if (plan.checksum.trailing) {
        expected = this.decoder.trailers[name];
        if (!isChecksumValue(algorithm, expected))
          throw this.dialect.invalidChecksumValue(name, true);
      }
      const computed = this.checksum.digest().toString('base64');
      if (computed !== expected) throw this.dialect.checksumMismatch(algorithm);
      checksum = {algorithm, value: computed};
    }
    return {chunks: this.chunks, length: this.length, sha256, checksum};
  }
}

// The checks of requests without a body worth reading (and of the
// self-check): the payload mode as planned, then the body's hashes.
function checkPayloadMode(headers, options) {
  return planPayload({headers, method: 'PUT', rawQuery: ''}, options);
}

function checkPayload(headers, sha256Hex, md5Base64) {
  if (sha256Hex !== headers['x-amz-content-sha256']) {
    throw new S3Error(
        400, 'XAmzContentSHA256Mismatch',
        'The provided \'x-amz-content-sha256\' header does not match what was computed.');
  }
  if (headers['content-md5'] !== undefined && md5Base64 !== headers['content-md5']) {
    throw new S3Error(
        400, 'BadDigest', 'The Content-MD5 you specified did not match what we received.');
  }
}

// ------------------------------------------------------------ self-check

// AWS's published S3 SigV4 examples ("Examples: Signature calculations in AWS
// Signature Version 4", header-based authentication), run through the same
// verifySignature() as real requests. A gateway that cannot confirm them must
// not judge anybody's requests.
async function selfCheck() {
  const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
  const options = {
    secrets: {AKIAIOSFODNN7EXAMPLE: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'},
    region: 'us-east-1',
  };
  const vector = (rawPath, rawQuery, extra, signedHeaders, signature) => ({
    method: 'GET',
    rawPath,
    rawQuery,
    headers: Object.assign(
        Object.create(null), {
          host: 'examplebucket.s3.amazonaws.com',
          'x-amz-date': '20130524T000000Z',
          'x-amz-content-sha256': empty,
          authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/' +
              `aws4_request, SignedHeaders=${signedHeaders}, Signature=${signature}`,
        },
        extra),
  });
  const good = [
    vector(
        '/test.txt', '', {range: 'bytes=0-9'}, 'host;range;x-amz-content-sha256;x-amz-date',
        'f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41'),
    vector(
        '/', 'lifecycle', {}, 'host;x-amz-content-sha256;x-amz-date',
        'fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543'),
    vector(
        '/', 'max-keys=2&prefix=J', {}, 'host;x-amz-content-sha256;x-amz-date',
        '34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7'),
  ];
  for (const request of good) await verifySignature(request, options);
  // The same requests changed in one signed detail each must fail.
  const tampered = [
    Object.assign({}, good[0], {headers: Object.assign({}, good[0].headers, {range: 'bytes=0-8'})}),
    Object.assign({}, good[0], {rawPath: '/test.txt2'}),
    Object.assign({}, good[2], {rawQuery: 'max-keys=3&prefix=J'}),
    Object.assign({}, good[0], {method: 'HEAD'}),
  ];
  for (const request of tampered) {
    let refused = false;
    try {
      await verifySignature(request, options);
    } catch (error) {
      refused = error instanceof S3Error && error.code === 'SignatureDoesNotMatch';
    }
    if (!refused)
      throw new Error(`a tampered request passed: ${request.method} ${request.rawPath}`);
  }

  // The checksums' published check values (the CRC catalogue's "123456789").
  const check = Buffer.from('123456789');
  const expectedChecks = {
    crc32: 'cbf43926',
    crc32c: 'e3069283',
    crc64nvme: 'ae8b14860a799888',
    sha1: 'f7c3bc1d808e04732adf679965ccc34ca7ae3441',
    sha256: '15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225',
  };
  for (const [algorithm, hex] of Object.entries(expectedChecks)) {
    const got = Buffer.from(checksumOf(algorithm, check), 'base64').toString('hex');
    if (got !== hex) throw new Error(`${algorithm} of "123456789" is ${got}, not ${hex}`);
  }

  // AWS's examples of SigV4 streaming uploads ("Signature calculations for the
  // Authorization header: transferring payload in multiple chunks", and the
  // same with trailing headers): 66,560 bytes of 'a' in chunks of 65,536,
  // 1,024 and 0, each chunk signature chained to the one before.
  const data = Buffer.alloc(66560, 'a');
  const chunked = (signatures, trailer) => Buffer.concat([
    Buffer.from(`10000;chunk-signature=${signatures[0]}\r\n`),
    data.subarray(0, 65536),
    Buffer.from(`\r\n400;chunk-signature=${signatures[1]}\r\n`),
    data.subarray(65536),
    Buffer.from(`\r\n0;chunk-signature=${signatures[2]}\r\n${trailer}\r\n`),
  ]);
  const seedRequest = {
    method: 'PUT',
    rawPath: '/examplebucket/chunkObject.txt',
    rawQuery: '',
    headers: Object.assign(Object.create(null), {
      host: 's3.amazonaws.com',
      'x-amz-date': '20130524T000000Z',
      'x-amz-storage-class': 'REDUCED_REDUNDANCY',
      'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      'content-encoding': 'aws-chunked',
      'x-amz-decoded-content-length': '66560',
      'content-length': '66824',
      authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/' +
          'aws4_request, SignedHeaders=content-encoding;content-length;host;' +
          'x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class, ' +
          'Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    }),
  };
  const seed = await verifySignature(seedRequest, options);
  const examples = [
    {
      mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
      seed: seed.seedSignature,
      signatures: [
        'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
        '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
        'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
      ],
      trailer: '',
      headers: {},
    },
    {
      mode: 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER',
      seed: '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e',
      signatures: [
        'b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2',
        '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7',
        '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992',
      ],
      trailer: 'x-amz-checksum-crc32c:sOO8/Q==\r\n' +
          'x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n',
      headers: {'x-amz-trailer': 'x-amz-checksum-crc32c'},
    },
  ];
  for (const example of examples) {
    const headers = Object.assign(
        {'x-amz-content-sha256': example.mode, 'x-amz-decoded-content-length': '66560'},
        example.headers);
    const verify = async (body) => {
      const verifier = new BodyVerifier(checkPayloadMode(headers, {}), DIALECTS.aws);
      for (let at = 0; at < body.length; at += 1000) verifier.push(body.subarray(at, at + 1000));
      return verifier.finish(headers, Object.assign({}, seed, {seedSignature: example.seed}));
    };
    const decoded = await verify(chunked(example.signatures, example.trailer));
    if (decoded.length !== data.length || !Buffer.concat(decoded.chunks).equals(data)) {
      throw new Error(`${example.mode}: AWS's example did not decode to its 66,560 bytes`);
    }
    // Any one chunk signature changed must be refused.
    for (let n = 0; n < 3; n++) {
      const signatures = example.signatures.slice();
      signatures[n] = signatures[n].replace(/^./, (c) => (c === '0' ? '1' : '0'));
      let refused = false;
      try {
        await verify(chunked(signatures, example.trailer));
      } catch (error) {
        refused = error instanceof S3Error && error.code === 'SignatureDoesNotMatch';
      }
      if (!refused) throw new Error(`${example.mode}: a wrong signature of chunk ${n + 1} passed`);
    }
  }
}

// ----------------------------------------------------------------- proxy

// Per-connection headers: never forwarded in either direction.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'
]);

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

function sendError(req, res, error, stats) {
  const id = requestId();
  const resource = req.url.split('?')[0];
  if (stats) stats.refused[error.code] = (stats.refused[error.code] || 0) + 1;
  process.stderr.write(
      `${new Date().toISOString()} strict-s3-gateway: ${error.status} ` +
      `${error.code} ${req.method} ${req.url}: ${error.message}\n`);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error>' +
      `<Code>${xmlEscape(error.code)}</Code><Message>${xmlEscape(error.message)}</Message>` +
      `<Resource>${xmlEscape(resource)}</Resource><RequestId>${id}</RequestId></Error>`;
  res.writeHead(error.status, {
    'Content-Type': 'application/xml',
    'Content-Length': Buffer.byteLength(body),
    'x-amz-request-id': id,
    'Date': new Date(Date.now() + clockOffsetMs).toUTCString(),
  });
  res.end(body);
}

// What the gateway saw since it started or was last asked with ?reset=1.
function newStats() {
  return {tcp_connections: 0, tls_handshakes: 0, tls_resumed: 0, requests: {}, refused: {}};
}

// Which S3 call a request is, as far as the gateway cares.
function isPutObject(request) {
  return request.method === 'PUT' && request.rawQuery === '' &&
      request.headers['x-amz-copy-source'] === undefined && /^\/[^/]+\/./.test(request.rawPath);
}
function isUploadPart(request) {
  return request.method === 'PUT' && hasQueryName(request.rawQuery, 'partNumber') &&
      hasQueryName(request.rawQuery, 'uploadId') &&
      request.headers['x-amz-copy-source'] === undefined;
}

function startProxy(options) {
  const upstreamAgent = new http.Agent({keepAlive: true, maxSockets: Infinity});
  const dialect = DIALECTS[options.dialect || 'aws'];
  let stats = newStats();

  // verified: what BodyVerifier.finish() proved (or null for a plain
  // forward): the decoded body replaces an aws-chunked one, and the
  // checksum of a PutObject is kept with the object.
  function forward(req, res, request, body, verified, retried) {
    const headers = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (!HOP_BY_HOP.has(name)) headers[name] = value;
    }
    // s3rver knows one key pair: the limited key's requests, checked above,
    // go on under the main key (s3rver does not check V4 signatures).
    if (options.limitedAccessKey && headers.authorization !== undefined) {
      headers.authorization = headers.authorization.replace(
          `Credential=${options.limitedAccessKey}/`, `Credential=${options.accessKey}/`);
    }
    // The body was buffered whole: it goes on with a length, never chunked.
    if (req.headers['content-length'] !== undefined ||
        req.headers['transfer-encoding'] !== undefined) {
      headers['content-length'] = String(body.length);
    }
    if (verified && verified.decoded) {
      // s3rver gets what the aws-chunked body carried, as a plain PUT.
      const encodings = (headers['content-encoding'] || '')
                            .split(',')
                            .map((e) => e.trim())
                            .filter((e) => e !== '' && e.toLowerCase() !== 'aws-chunked');
      if (encodings.length > 0) {
        headers['content-encoding'] = encodings.join(',');
      } else {
        delete headers['content-encoding'];
      }
      delete headers['x-amz-decoded-content-length'];
      delete headers['x-amz-trailer'];
      headers['x-amz-content-sha256'] = verified.sha256;
    }
    if (verified && verified.checksum && isPutObject(request)) {
      headers[STORED_CHECKSUM_PREFIX + verified.checksum.algorithm] = verified.checksum.value;
    }
    const upstream = http.request({
      host: options.upstreamHost,
      port: options.upstreamPort,
      method: req.method,
      path: req.url,
      headers,
      agent: upstreamAgent,
    });
    let answered = false;
    upstream.on('response', (reply) => {
      answered = true;
      res.writeHead(reply.statusCode, reply.statusMessage, replyHeaders(request, reply, verified));
      reply.pipe(res);
      reply.on('error', () => res.destroy());
    });
    upstream.on('error', (error) => {
      if (res.destroyed) return;
      // A kept-alive connection that s3rver closed while idle: the request
      // never reached it, and the body is in memory, so send it once more.
      if (!answered && !retried && upstream.reusedSocket && error.code === 'ECONNRESET') {
        forward(req, res, request, body, verified, true);
        return;
      }
      if (answered) {
        res.destroy();
      } else {
        sendError(
            req, res,
            new S3Error(502, 'BadGateway', `s3rver unreachable: ${error.code || error.message}`),
            stats);
      }
    });
    // The client gave up (its timeout, a stop request): so does the upstream call.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    for (const chunk of body.chunks) upstream.write(chunk);
    upstream.end();
  }

  // s3rver's reply headers as S3 would send them: the stored checksum is
  // hidden, and answered as x-amz-checksum-* where S3 answers it (a verified
  // PutObject or UploadPart; HeadObject and GetObject of a whole object asked
  // with x-amz-checksum-mode: ENABLED).
  function replyHeaders(request, reply, verified) {
    const out = [];
    const stored = {};
    for (let i = 0; i < reply.rawHeaders.length; i += 2) {
      const name = reply.rawHeaders[i].toLowerCase();
      if (HOP_BY_HOP.has(name)) continue;
      if (name === 'date') {
        out.push(reply.rawHeaders[i], new Date(Date.now() + clockOffsetMs).toUTCString());
        continue;
      }
      if (name.startsWith(STORED_CHECKSUM_PREFIX)) {
        stored[name.slice(STORED_CHECKSUM_PREFIX.length)] = reply.rawHeaders[i + 1];
        continue;
      }
      out.push(reply.rawHeaders[i], reply.rawHeaders[i + 1]);
    }
    const ok = reply.statusCode >= 200 && reply.statusCode < 300;
    if (ok && verified && verified.checksum && (isPutObject(request) || isUploadPart(request))) {
      out.push(CHECKSUM_PREFIX + verified.checksum.algorithm, verified.checksum.value);
      if (isPutObject(request)) out.push('x-amz-checksum-type', 'FULL_OBJECT');
    }
    const wholeObject =
        request.headers.range === undefined && !hasQueryName(request.rawQuery, 'partNumber');
    if (ok && (request.method === 'GET' || request.method === 'HEAD') && wholeObject &&
        (request.headers['x-amz-checksum-mode'] || '').toUpperCase() === 'ENABLED') {
      for (const [algorithm, value] of Object.entries(stored)) {
        if (CHECKSUMS[algorithm]) out.push(CHECKSUM_PREFIX + algorithm, value);
      }
      if (Object.keys(stored).length > 0) out.push('x-amz-checksum-type', 'FULL_OBJECT');
    }
    return out;
  }

  async function handle(req, res) {
    const qmark = req.url.indexOf('?');
    const request = {
      method: req.method,
      rawPath: qmark < 0 ? req.url : req.url.slice(0, qmark),
      rawQuery: qmark < 0 ? '' : req.url.slice(qmark + 1),
      headers: headerMap(req.rawHeaders),
    };
    stats.requests[req.method] = (stats.requests[req.method] || 0) + 1;
    let refusal = null;
    let seed = null;
    let verifier = null;
    try {
      seed = await verifySignature(
          request,
          {secrets: options.secrets, region: options.region, now: Date.now() + clockOffsetMs});
      const plan = planPayload(request, options);
      checkRights(request);
      checkUploadExists(request);
      verifier = new BodyVerifier(plan, dialect);
    } catch (error) {
      if (!(error instanceof S3Error)) throw error;
      refusal = error;
    }
    // The body is read in every case (and dropped when refused), so the
    // connection stays usable for the client's next request.
    req.on('data', (chunk) => {
      if (!refusal) verifier.push(chunk);
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      const verdict = refusal ? Promise.reject(refusal) : verifier.finish(request.headers, seed);
      verdict
          .then((body) => {
            if (request.method === 'POST' && hasQueryName(request.rawQuery, 'uploadId') &&
                Buffer.concat(body.chunks).includes('<Checksum')) {
              throw new S3Error(
                  501, 'NotImplemented',
                  'CompleteMultipartUpload naming part checksums: this gateway keeps no ' +
                      'multipart checksums');
            }
            const verified = {
              decoded: Boolean(verifier.plan.streaming),
              sha256: body.sha256,
              checksum: body.checksum,
            };
            if (!isConditionalCreate(request)) {
              forward(req, res, request, body, verified, false);
              return;
            }
            return objectExists(request.rawPath)
                .then(
                    (exists) => {
                      if (exists) {
                        sendError(
                            req, res,
                            new S3Error(
                                412, 'PreconditionFailed',
                                'At least one of the pre-conditions you specified did not hold'),
                            stats);
                      } else {
                        forward(req, res, request, body, verified, false);
                      }
                    },
                    (error) => {
                      sendError(
                          req, res,
                          new S3Error(
                              502, 'BadGateway',
                              `s3rver unreachable: ${error.code || error.message}`),
                          stats);
                    });
          })
          .catch((error) => {
            if (!(error instanceof S3Error)) {
              error = new S3Error(500, 'InternalError', `gateway fault: ${error.message}`);
            }
            sendError(req, res, error, stats);
          });
    });
  }

  // The limited key pair may not create buckets (PUT on a bucket's path,
  // no query: CreateBucket).
  function checkRights(request) {
    const {accessKey} = parseAuthorization(request.headers.authorization);
    if (accessKey === options.limitedAccessKey && request.method === 'PUT' &&
        request.rawQuery === '' && /^\/[^/]+\/?$/.test(request.rawPath)) {
      throw new S3Error(403, 'AccessDenied', 'Access Denied');
    }
  }

  // UploadPart (PUT) and CompleteMultipartUpload (POST) name an upload by
  // its id; s3rver keeps one as <data>/<bucket>/._S3rver_uploads/<id>/ until
  // it is completed.
  function checkUploadExists(request) {
    if (!options.upstreamData || (request.method !== 'PUT' && request.method !== 'POST')) return;
    const uploadId = parseQuery(request.rawQuery).uploadId;
    const bucket = request.rawPath.split('/')[1] || '';
    if (typeof uploadId !== 'string' || !/^[0-9a-f]+$/.test(uploadId) ||
        !/^[a-z0-9.-]+$/.test(bucket))
      return;
    if (!fs.existsSync(path.join(options.upstreamData, bucket, '._S3rver_uploads', uploadId))) {
      throw new S3Error(
          404, 'NoSuchUpload',
          'The specified upload does not exist. The upload ID may be invalid, or the upload ' +
              'may have been aborted or completed.');
    }
  }

  // PutObject (not UploadPart, not CopyObject) with If-None-Match: *.
  function isConditionalCreate(request) {
    return request.method === 'PUT' && request.headers['if-none-match'] === '*' &&
        request.rawQuery === '' && request.headers['x-amz-copy-source'] === undefined;
  }

  // Whether s3rver holds an object at rawPath (HeadObject, unsigned: s3rver checks nothing).
  function objectExists(rawPath) {
    return new Promise((resolve, reject) => {
      const head = http.request(
          {
            host: options.upstreamHost,
            port: options.upstreamPort,
            method: 'HEAD',
            path: rawPath,
            agent: upstreamAgent,
          },
          (reply) => {
            reply.resume();
            resolve(reply.statusCode === 200);
          });
      head.on('error', reject);
      head.end();
    });
  }

  const onRequest = (req, res) => {
    handle(req, res).catch((error) => {
      sendError(
          req, res, new S3Error(500, 'InternalError', `gateway fault: ${error.message}`), stats);
    });
  };
  const server = options.key ?
      https.createServer(
          {key: fs.readFileSync(options.key), cert: fs.readFileSync(options.cert)}, onRequest) :
      http.createServer(onRequest);
  server.on('connection', () => {
    stats.tcp_connections += 1;
  });
  server.on('secureConnection', (socket) => {
    stats.tls_handshakes += 1;
    if (socket.isSessionReused()) stats.tls_resumed += 1;
  });
  // The client decides how long it waits (its own timeouts); idle
  // connections stay open long enough for its keep-alive reuse.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 70000;
  // Port 0 takes a free port; the line below names the one taken.
  server.listen(Number(options.port), options.host, () => {
    process.stderr.write(
        `strict-s3-gateway: ${options.key ? 'https' : 'http'}://` +
        `${options.host}:${server.address().port} -> http://${options.upstreamHost}:${
            options.upstreamPort}` +
        `${options.acceptUnsignedPayload ? ' (accepting unsigned payloads)' : ''}` +
        `${options.dialect === 'minio' ? ' (MinIO error codes)' : ''}` +
        `${clockOffsetMs ? ` (clock off by ${clockOffsetMs / 1000} s)` : ''}\n`);
    if (options.portFile) fs.writeFileSync(options.portFile, `${server.address().port}\n`);
  });
  server.on('error', (error) => {
    process.stderr.write(`strict-s3-gateway: ${error.message}\n`);
    process.exit(1);
  });
  if (options.statsPort) {
    http.createServer((req, res) => {
          const body = JSON.stringify(stats);
          if (/[?&]reset=1\b/.test(req.url)) stats = newStats();
          res.writeHead(200, {'Content-Type': 'application/json'});
          res.end(body);
        })
        .listen(Number(options.statsPort), '127.0.0.1');
  }
  return server;
}

module.exports = {
  verifySignature,
  planPayload,
  checkPayloadMode,
  checkPayload,
  checksumOf,
  BodyVerifier,
  canonicalPathOf,
  parseQuery,
  selfCheck,
  S3Error,
  DIALECTS,
};

if (require.main === module) {
  selfCheck().then(
      () => {
        const secrets = {[args.accessKey]: args.secretKey};
        if (args.limitedAccessKey) secrets[args.limitedAccessKey] = args.limitedSecretKey;
        startProxy(Object.assign({}, args, {secrets}));
      },
      (error) => {
        process.stderr.write(
            `strict-s3-gateway: self-check against AWS's SigV4 examples failed: ` +
            `${error.message || error.code}; refusing to start\n`);
        process.exit(1);
      });
  process.on('SIGTERM', () => process.exit(0));
}
