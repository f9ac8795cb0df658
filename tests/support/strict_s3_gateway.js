#!/usr/bin/env node
// A strict S3 front for s3rver.
//
// s3rver accepts any signature and never looks at x-amz-content-sha256 or
// Content-MD5, so a test that passes against it proves nothing about MinIO,
// AWS S3 or Ceph RGW, which reject such requests. This reverse proxy checks
// what those servers check and forwards only requests that pass:
//
//   * AWS Signature V4 in the Authorization header, recomputed with the AWS
//     SDK's own signer (@smithy/signature-v4), never with code of ours, so a
//     shared misunderstanding cannot make both sides agree;
//   * the request path must be in the encoding S3 servers re-create before
//     signing (they decode the path and encode it again), so a client that
//     signs one encoding and sends another fails here as it would there;
//   * the body's SHA-256 must equal x-amz-content-sha256 (no UNSIGNED-PAYLOAD,
//     no STREAMING-*), and its MD5 must equal Content-MD5 when sent;
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
// Rejected requests get the S3 error document real servers send and one line
// on stderr; nothing of them reaches s3rver. Everything else is forwarded
// unchanged and the reply streamed back unchanged.
//
//   node strict_s3_gateway.js --port P --upstream U [--access-key K --secret-key S]
//        [--limited-access-key K2 --limited-secret-key S2]
//        [--region R] [--key server.key --cert server.pem] [--modules DIR]
//        [--upstream-data DIR]
//
// --upstream is s3rver's port (or host:port) on plain HTTP. --region, when
// given, must match the credential scope. --modules is the node_modules
// directory holding the signer (default: .deps/s3gateway/node_modules of the
// repository).
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const http = require('http');
const https = require('https');
const path = require('path');

// ---------------------------------------------------------------- arguments

function parseArgs(argv) {
  const args = {
    host: '127.0.0.1',
    accessKey: 'S3RVER',
    secretKey: 'S3RVER',
    modules: path.join(__dirname, '..', '..', '.deps', 's3gateway', 'node_modules'),
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
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) usage(`bad argument '${argv[i]}'`);
    args[name] = argv[i + 1];
  }
  if (!args.port || !args.upstream) usage('--port and --upstream are required');
  if (Boolean(args.key) !== Boolean(args.cert)) usage('--key and --cert go together');
  if (Boolean(args.limitedAccessKey) !== Boolean(args.limitedSecretKey)) {
    usage('--limited-access-key and --limited-secret-key go together');
  }
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
      '[--secret-key S] [--limited-access-key K2 --limited-secret-key S2] [--region R] [--key FILE --cert FILE] [--modules DIR]\n');
  process.exit(2);
}

const args = require.main === module ? parseArgs(process.argv.slice(2)) : null;
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
}

// ---------------------------------------------------------------- payload

const HEX_SHA256 = /^[0-9a-f]{64}$/;

// Checks the claimed payload hash before the body is read.
function checkPayloadMode(headers) {
  const claimed = headers['x-amz-content-sha256'];
  if (claimed === 'UNSIGNED-PAYLOAD') {
    throw new S3Error(
        400, 'UnsignedPayloadRefused',
        'UNSIGNED-PAYLOAD is refused here: media-sync always signs the body hash');
  }
  if (claimed.startsWith('STREAMING-')) {
    throw new S3Error(
        400, 'StreamingPayloadRefused',
        `${claimed} is refused here: media-sync always signs the whole body hash`);
  }
  if (!HEX_SHA256.test(claimed)) {
    throw new S3Error(
        400, 'InvalidArgument',
        'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a lower-case hex SHA-256');
  }
  const md5 = headers['content-md5'];
  if (md5 !== undefined &&
      (!/^[A-Za-z0-9+/]{22}==$/.test(md5) || Buffer.from(md5, 'base64').length !== 16)) {
    throw new S3Error(400, 'InvalidDigest', 'The Content-MD5 you specified was invalid.');
  }
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
}

// ----------------------------------------------------------------- proxy

// Per-connection headers: never forwarded in either direction.
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'
]);

function requestId() {
  return crypto.randomBytes(8).toString('hex').toUpperCase();
}

function sendError(req, res, error) {
  const id = requestId();
  const resource = req.url.split('?')[0];
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
  });
  res.end(body);
}

function startProxy(options) {
  const upstreamAgent = new http.Agent({keepAlive: true, maxSockets: Infinity});

  function forward(req, res, chunks, length, retried) {
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
      headers['content-length'] = String(length);
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
      const replyHeaders = [];
      for (let i = 0; i < reply.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(reply.rawHeaders[i].toLowerCase())) {
          replyHeaders.push(reply.rawHeaders[i], reply.rawHeaders[i + 1]);
        }
      }
      res.writeHead(reply.statusCode, reply.statusMessage, replyHeaders);
      reply.pipe(res);
      reply.on('error', () => res.destroy());
    });
    upstream.on('error', (error) => {
      if (res.destroyed) return;
      // A kept-alive connection that s3rver closed while idle: the request
      // never reached it, and the body is in memory, so send it once more.
      if (!answered && !retried && upstream.reusedSocket && error.code === 'ECONNRESET') {
        forward(req, res, chunks, length, true);
        return;
      }
      if (answered) {
        res.destroy();
      } else {
        sendError(
            req, res,
            new S3Error(502, 'BadGateway', `s3rver unreachable: ${error.code || error.message}`));
      }
    });
    // The client gave up (its timeout, a stop request): so does the upstream call.
    res.on('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    for (const chunk of chunks) upstream.write(chunk);
    upstream.end();
  }

  async function handle(req, res) {
    const qmark = req.url.indexOf('?');
    const request = {
      method: req.method,
      rawPath: qmark < 0 ? req.url : req.url.slice(0, qmark),
      rawQuery: qmark < 0 ? '' : req.url.slice(qmark + 1),
      headers: headerMap(req.rawHeaders),
    };
    let refusal = null;
    try {
      await verifySignature(
          request, {secrets: options.secrets, region: options.region, now: Date.now()});
      checkPayloadMode(request.headers);
      checkRights(request);
      checkUploadExists(request);
    } catch (error) {
      if (!(error instanceof S3Error)) throw error;
      refusal = error;
    }
    // The body is read in every case (and dropped when refused), so the
    // connection stays usable for the client's next request.
    const sha256 = crypto.createHash('sha256');
    const md5 = crypto.createHash('md5');
    const chunks = [];
    let length = 0;
    req.on('data', (chunk) => {
      if (refusal) return;
      sha256.update(chunk);
      md5.update(chunk);
      chunks.push(chunk);
      length += chunk.length;
    });
    req.on('error', () => res.destroy());
    req.on('end', () => {
      if (!refusal) {
        try {
          checkPayload(request.headers, sha256.digest('hex'), md5.digest('base64'));
        } catch (error) {
          refusal = error;
        }
      }
      if (refusal) {
        sendError(req, res, refusal);
      } else if (isConditionalCreate(request)) {
        objectExists(request.rawPath)
            .then(
                (exists) => {
                  if (exists) {
                    sendError(
                        req, res,
                        new S3Error(
                            412, 'PreconditionFailed',
                            'At least one of the pre-conditions you specified did not hold'));
                  } else {
                    forward(req, res, chunks, length, false);
                  }
                },
                (error) => {
                  sendError(
                      req, res,
                      new S3Error(
                          502, 'BadGateway', `s3rver unreachable: ${error.code || error.message}`));
                });
      } else {
        forward(req, res, chunks, length, false);
      }
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
    if (typeof uploadId !== 'string' || !/^[0-9a-f]+$/.test(uploadId) || !/^[a-z0-9.-]+$/.test(bucket)) return;
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
      sendError(req, res, new S3Error(500, 'InternalError', `gateway fault: ${error.message}`));
    });
  };
  const server = options.key ?
      https.createServer(
          {key: fs.readFileSync(options.key), cert: fs.readFileSync(options.cert)}, onRequest) :
      http.createServer(onRequest);
  // The client decides how long it waits (its own timeouts); idle
  // connections stay open long enough for its keep-alive reuse.
  server.requestTimeout = 0;
  server.keepAliveTimeout = 65000;
  server.headersTimeout = 70000;
  server.listen(Number(options.port), options.host, () => {
    process.stderr.write(
        `strict-s3-gateway: ${options.key ? 'https' : 'http'}://` +
        `${options.host}:${options.port} -> http://${options.upstreamHost}:${
            options.upstreamPort}\n`);
  });
  server.on('error', (error) => {
    process.stderr.write(`strict-s3-gateway: ${error.message}\n`);
    process.exit(1);
  });
  return server;
}

module.exports = {
  verifySignature,
  checkPayloadMode,
  checkPayload,
  canonicalPathOf,
  parseQuery,
  selfCheck,
  S3Error
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
