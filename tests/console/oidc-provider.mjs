// A real OpenID provider (the certified `oidc-provider` package) on loopback, for the console's
// sign-in tests. Plain HTTP on 127.0.0.1 only: the relying party accepts http for loopback
// issuers and nothing else.
//
// Environment (all but OIDC_CLIENTS and OIDC_ACCOUNTS optional):
//   OIDC_PORT         port to listen on (argument 1 wins; default 0: any free port)
//   OIDC_ISSUER_HOST  host written into the issuer (default 127.0.0.1; another name makes a
//                     provider that states an issuer other than the address it is reached at)
//   OIDC_CLIENTS      JSON [{"client_id","client_secret","redirect_uri"}]: confidential clients
//   OIDC_ACCOUNTS     JSON {"<login>": {<claims>}}: accounts and the claims of their ID tokens
//                     (each login is its `sub`)
//   OIDC_AUTH_METHOD  client authentication at the token endpoint (default client_secret_basic)
//   OIDC_ALG          ES256 (default) or RS256: the signing key, made afresh at each start
//
// oidc-provider 9 (the maintained line) runs on Node.js 20 (the machines' Node.js) and passes
// these tests there, though it prints that it prefers 22; 8.8.1 would be the last release made
// for 20, with more than twice the packages.
//
// The first line on stdout is the port. Sign-in uses the provider's development interactions:
// a login form (any password) and a consent form, both plain HTML forms.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const json = (name, fallback) => {
  const raw = process.env[name];
  if (!raw) {
    if (fallback !== undefined) return fallback;
    throw new Error(`${name} must be set`);
  }
  return JSON.parse(raw);
};

const clients = json('OIDC_CLIENTS');
const accounts = json('OIDC_ACCOUNTS');
const authMethod = process.env.OIDC_AUTH_METHOD || 'client_secret_basic';
const alg = process.env.OIDC_ALG || 'ES256';
const port = Number(process.argv[2] || process.env.OIDC_PORT || 0);
const issuerHost = process.env.OIDC_ISSUER_HOST || '127.0.0.1';

const keyPair = alg === 'RS256'
  ? generateKeyPairSync('rsa', { modulusLength: 2048 })
  : generateKeyPairSync('ec', { namedCurve: 'P-256' });
const jwk = { ...keyPair.privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg, use: 'sig' };

// Every claim any account has is released with the `openid` scope and put in the ID token.
const claimNames = new Set(['sub']);
for (const claims of Object.values(accounts)) {
  for (const name of Object.keys(claims)) claimNames.add(name);
}

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const { port: bound } = server.address();
  const issuer = `http://${issuerHost}:${bound}`;
  const provider = new Provider(issuer, {
    clients: clients.map((c) => ({
      client_id: c.client_id,
      client_secret: c.client_secret,
      redirect_uris: [c.redirect_uri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: authMethod,
      id_token_signed_response_alg: alg,
    })),
    clientAuthMethods: [authMethod],
    enabledJWA: { idTokenSigningAlgValues: [alg] },
    jwks: { keys: [jwk] },
    pkce: { required: () => true },
    claims: { openid: [...claimNames] },
    conformIdTokenClaims: false,
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      if (!Object.hasOwn(accounts, id)) return undefined;
      return {
        accountId: id,
        async claims() {
          return { ...accounts[id], sub: id };
        },
      };
    },
  });
  server.on('request', provider.callback());
  process.stdout.write(`${bound}\n`);
});

// Output after the port line is for people only: a reader that went away is no reason to stop.
process.stdout.on('error', () => {});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => process.exit(0));
}
// The test that started us holds our stdin: when it goes away, so do we.
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
