#!/usr/bin/env node
// The "Sign in with Apple" client secret, signed the way most teams do it by
// hand today: jsonwebtoken, ES256, the .p8 key from the Apple developer portal.
// bench/startup.py times this against `rotator mint`.
//
//   node mint.js KEY_FILE TEAM_ID KEY_ID SERVICES_ID [LIFETIME]
//
// Any argument left out is read from the environment rotator itself uses:
// APPLE_PRIVATE_KEY_FILE, APPLE_TEAM_ID, APPLE_KEY_ID, APPLE_CLIENT_ID,
// ROTATOR_SECRET_LIFETIME. LIFETIME is seconds or a duration like "180d"
// (default 180d). Prints the secret on stdout.
'use strict';

const fs = require('fs');
const jwt = require('jsonwebtoken');

const [keyFile, teamId, keyId, servicesId, lifetimeArg] = [
  process.argv[2] || process.env.APPLE_PRIVATE_KEY_FILE,
  process.argv[3] || process.env.APPLE_TEAM_ID,
  process.argv[4] || process.env.APPLE_KEY_ID,
  process.argv[5] || process.env.APPLE_CLIENT_ID,
  process.argv[6] || process.env.ROTATOR_SECRET_LIFETIME || '180d',
];

const missing = [
  ['KEY_FILE / APPLE_PRIVATE_KEY_FILE', keyFile],
  ['TEAM_ID / APPLE_TEAM_ID', teamId],
  ['KEY_ID / APPLE_KEY_ID', keyId],
  ['SERVICES_ID / APPLE_CLIENT_ID', servicesId],
].filter(([, value]) => !value).map(([name]) => name);
if (missing.length) {
  console.error(`mint.js: missing ${missing.join(', ')}`);
  console.error('usage: node mint.js KEY_FILE TEAM_ID KEY_ID SERVICES_ID [LIFETIME]');
  process.exit(2);
}

// jsonwebtoken reads a number as seconds and a string through `ms` ("180d").
const expiresIn = /^\d+$/.test(lifetimeArg) ? Number(lifetimeArg) : lifetimeArg;

const secret = jwt.sign({}, fs.readFileSync(keyFile), {
  algorithm: 'ES256',
  keyid: keyId,
  issuer: teamId,
  audience: 'https://appleid.apple.com',
  subject: servicesId,
  expiresIn,
});
process.stdout.write(secret + '\n');
