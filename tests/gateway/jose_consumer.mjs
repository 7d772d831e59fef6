// gateway-lab: a JWT consumer built on panva/jose, driven by tests/gateway/harness.py.
// argv: JWKS_URL CACHE_MAX_AGE_MS COOLDOWN_MS. One JSON request per stdin line
// ({"token", "issuer", "audience", "algorithms"}), one JSON answer per stdout line.
import { createInterface } from "node:readline";
import { createRemoteJWKSet, jwtVerify } from "jose";

const [url, cacheMaxAge, cooldownDuration] = process.argv.slice(2);
const jwks = createRemoteJWKSet(new URL(url), {
  cacheMaxAge: Number(cacheMaxAge),
  cooldownDuration: Number(cooldownDuration),
});
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

out({ ready: true });
for await (const line of createInterface({ input: process.stdin })) {
  if (!line.trim()) continue;
  const req = JSON.parse(line);
  const options = {};
  for (const name of ["issuer", "audience", "algorithms"]) {
    if (req[name] !== null && req[name] !== undefined) options[name] = req[name];
  }
  try {
    const { payload, protectedHeader } = await jwtVerify(req.token, jwks, options);
    out({ ok: true, payload, header: protectedHeader });
  } catch (err) {
    out({ ok: false, code: err.code ?? err.name, message: String(err.message) });
  }
}
