// s3rver 3.7.1 (npm) on loopback, with AWS Signature V4 checked as S3 checks it.
//
// s3rver verifies only V2 signatures: for V4 its authentication middleware takes any signature
// from a known access key ("Signature version 4 calculation is unimplemented",
// lib/middleware/authentication.js). So a wrong secret key would pass. This wrapper puts a
// SigV4 check in front of s3rver's routes, written from AWS's specification ("Signature
// Calculations for the Authorization Header"); the C++ signer is tested separately against
// AWS's published example (tests/server/archive/s3_test.cc), so the two anchor each other.
//
// Usage: node s3rver_sigv4.js DIR BUCKET [ACCESS_KEY SECRET [REGION]]
// Prints "port N" on standard output once listening; stops on SIGTERM.

'use strict';

const crypto = require('crypto');
const path = require('path');

const root = process.env.MEDIC_SOURCE_DIR || path.join(__dirname, '..', '..');
const S3rver = require(path.join(root, 'node_modules', 's3rver'));
const AWSAccount = require(path.join(root, 'node_modules', 's3rver', 'lib', 'models', 'account'));

const [dir, bucket, accessKey = 'S3RVER', secret = 'S3RVER', region = 'us-east-1'] =
  process.argv.slice(2);
if (!dir || !bucket) {
  console.error('usage: node s3rver_sigv4.js DIR BUCKET [ACCESS_KEY SECRET [REGION]]');
  process.exit(2);
}
if (accessKey !== 'S3RVER') {
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(accessKey, secret);
}

function enc(s) {
  return encodeURIComponent(s).replace(/[!'()*]/g, c => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}
function hmac(key, data) {
  return crypto.createHmac('sha256', key).update(data, 'utf8').digest();
}
function sha256(data) {
  return crypto.createHash('sha256').update(data, 'utf8').digest('hex');
}
function fail(ctx, status, code, message) {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>' + code +
    '</Code><Message>' + message + '</Message></Error>';
}

// Recomputes the signature of the request's Authorization header; true when it matches.
async function checkSigV4(ctx, next) {
  const auth = ctx.get('Authorization');
  const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth);
  if (!m) {
    return fail(ctx, 403, 'AccessDenied', 'SigV4 Authorization header required');
  }
  const [, keyId, date, reqRegion, signedHeaders, signature] = m;
  const keySecret = keyId === accessKey ? secret : undefined;
  if (keySecret === undefined) {
    return fail(ctx, 403, 'InvalidAccessKeyId', 'The AWS Access Key Id you provided does not exist in our records.');
  }
  if (reqRegion !== region) {
    return fail(ctx, 400, 'AuthorizationHeaderMalformed', 'the region is wrong; expecting ' + region);
  }
  const amzDate = ctx.get('x-amz-date');
  const payload = ctx.get('x-amz-content-sha256');
  if (!amzDate.startsWith(date) || !payload) {
    return fail(ctx, 400, 'AuthorizationHeaderMalformed', 'x-amz-date and x-amz-content-sha256 required');
  }
  const t = Date.UTC(+amzDate.slice(0, 4), +amzDate.slice(4, 6) - 1, +amzDate.slice(6, 8),
    +amzDate.slice(9, 11), +amzDate.slice(11, 13), +amzDate.slice(13, 15));
  if (!(Math.abs(Date.now() - t) <= 15 * 60 * 1000)) {
    return fail(ctx, 403, 'RequestTimeTooSkewed', 'The difference between the request time and the current time is too large.');
  }
  const names = signedHeaders.split(';');
  if (!names.includes('host') || !names.includes('x-amz-date') ||
      !names.includes('x-amz-content-sha256')) {
    return fail(ctx, 403, 'AccessDenied', 'host, x-amz-date and x-amz-content-sha256 must be signed');
  }
  for (const h of Object.keys(ctx.headers)) {
    if (h.startsWith('x-amz-') && !names.includes(h)) {
      return fail(ctx, 403, 'AccessDenied', 'header ' + h + ' is not signed');
    }
  }
  const rawUrl = ctx.req.url;
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const rawQuery = q < 0 ? '' : rawUrl.slice(q + 1);
  const uri = rawPath.split('/').map(s => enc(decodeURIComponent(s))).join('/');
  const query = rawQuery === '' ? '' : rawQuery.split('&').map(kv => {
    const i = kv.indexOf('=');
    const k = decodeURIComponent(i < 0 ? kv : kv.slice(0, i));
    const v = decodeURIComponent(i < 0 ? '' : kv.slice(i + 1));
    return [enc(k), enc(v)];
  }).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => k + '=' + v).join('&');
  const headers = names.map(n => n + ':' + String(ctx.get(n)).trim().replace(/\s+/g, ' ') + '\n').join('');
  const canonical = [ctx.method, uri, query, headers, signedHeaders, payload].join('\n');
  const scope = date + '/' + region + '/s3/aws4_request';
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256(canonical)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac('AWS4' + keySecret, date), region), 's3'), 'aws4_request');
  const want = crypto.createHmac('sha256', kSigning).update(toSign, 'utf8').digest('hex');
  if (want !== signature) {
    return fail(ctx, 403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  return next();
}

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: dir,
  silent: true,
  vhostBuckets: false,
  configureBuckets: [{ name: bucket, configs: [] }],
});
// Koa composes its middleware when it starts listening: the check runs before every route.
server.middleware.unshift(checkSigV4);
server.run().then(address => {
  process.stdout.write('port ' + address.port + '\n');
}, err => {
  console.error('s3rver: ' + err.stack);
  process.exit(1);
});
const stop = () => server.close().then(() => process.exit(0), () => process.exit(0));
process.on('SIGTERM', stop);
