// Serves client metadata documents over HTTPS on loopback for the CIMD end-to-end runs.
// Usage: node cimd_server.mjs CERT KEY PORTFILE -> writes the chosen port to PORTFILE.
// Every /<name>.json is a document whose client_id is its own URL.
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';

const [cert, key, portFile] = process.argv.slice(2);
const server = https.createServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
  const m = /^\/([a-z0-9-]+)\.json$/.exec(req.url);
  if (!m) { res.writeHead(404).end(); return; }
  const url = `https://127.0.0.1:${server.address().port}${req.url}`;
  res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'max-age=300' });
  res.end(JSON.stringify({
    client_id: url,
    client_name: `portcullis e2e (${m[1]}, metadata document)`,
    redirect_uris: ['http://127.0.0.1:53683/callback', 'http://127.0.0.1:53684/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }));
});
server.listen(0, '127.0.0.1', () => writeFileSync(portFile, String(server.address().port)));
