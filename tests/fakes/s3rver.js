// @20minutes/s3rver 5.0.0 (npm; the maintained fork of s3rver) on loopback, with one bucket.
//
// It checks AWS Signature V4 itself (lib/signature/v4.js, lib/middleware/authentication.js:
// the canonical request, the string to sign and the signing key recomputed from the secret of
// the access key; a mismatch is 403 SignatureDoesNotMatch), so a wrong secret key fails as it
// would on S3. The original s3rver 3.7.1 does not: it accepts any V4 signature from a known
// access key. Its default key pair is S3RVER / S3RVER.
//
// Usage: node s3rver.js DIR BUCKET
// Prints "port N" on standard output once listening; stops on SIGTERM.

'use strict';

const path = require('path');

const root = process.env.MEDIC_SOURCE_DIR || path.join(__dirname, '..', '..');
const S3rver = require(path.join(root, 'node_modules', '@20minutes', 's3rver'));

const [dir, bucket] = process.argv.slice(2);
if (!dir || !bucket) {
  console.error('usage: node s3rver.js DIR BUCKET');
  process.exit(2);
}

const server = new S3rver({
  address: '127.0.0.1',
  port: 0,
  directory: dir,
  silent: true,
  vhostBuckets: false,
  configureBuckets: [{ name: bucket, configs: [] }],
});
server.run().then(address => {
  process.stdout.write('port ' + address.port + '\n');
}, err => {
  console.error('s3rver: ' + err.stack);
  process.exit(1);
});
const stop = () => server.close().then(() => process.exit(0), () => process.exit(0));
process.on('SIGTERM', stop);
