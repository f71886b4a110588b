// A real OpenID Connect provider for airlock's SSO tests: node's certified `oidc-provider`
// (installed by scripts/install-deps.sh into .tools/node), on 127.0.0.1 with its own
// development login and consent pages.
//
// Environment:
//   OIDC_PROVIDER_MODULE  path to oidc-provider's lib/index.js
//   PORT                  port to listen on (0: any; the first stdout line says which)
//   KEY_ID                kid of the freshly generated RS256 signing key (a restart with another
//                         KEY_ID is a key rotation)
//   CLIENTS               JSON array of client metadata
//   USERS_FILE            JSON {login: {email, name, groups, amr, acr}}, read at every sign-in,
//                         so a test can change someone's groups between sign-ins
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);
const users = () => JSON.parse(readFileSync(process.env.USERS_FILE, 'utf8'));

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: process.env.KEY_ID, use: 'sig', alg: 'RS256' };

const server = http.createServer();
server.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: JSON.parse(process.env.CLIENTS),
    jwks: { keys: [jwk] },
    cookies: { keys: ['airlock-test-cookie-key'] },
    // Claims go into the ID token (not only userinfo), as Keycloak's and ADFS's do by default.
    conformIdTokenClaims: false,
    scopes: ['openid', 'email', 'profile', 'groups'],
    // acr and amr under openid, so every ID token says how the user authenticated (as
    // Keycloak and Entra ID do) without a claims request parameter.
    claims: { sid: null, auth_time: null, iss: null, openid: ['sub', 'acr', 'amr'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    acrValues: ['urn:airlock:mfa', 'urn:airlock:password'],
    features: {
      devInteractions: { enabled: true },
      deviceFlow: { enabled: true },
      rpInitiatedLogout: { enabled: true },
    },
    async findAccount(ctx, id) {
      const user = users()[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: user.email, email_verified: true, name: user.name, groups: user.groups };
        },
      };
    },
  });
  // The development login page asks for any login and password; what a real IdP's MFA step
  // would record (amr, acr) comes from the user's entry, so the tests can sign in with and
  // without a second factor.
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = async (req, res, result, options) => {
    if (result.login) {
      const user = users()[result.login.accountId] || {};
      result.login.amr = user.amr;
      result.login.acr = user.acr;
    }
    return finished(req, res, result, options);
  };
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
