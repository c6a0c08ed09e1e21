// Serves the test SMART app (app/*.html), the fhirclient browser bundle and app-config.json on
// 127.0.0.1:PORT. With --proxy ORIGIN it also forwards /fhir/ and /auth/ to Kiln at ORIGIN, so that the
// app and the server share one origin (a diagnostic mode: a real SMART app lives on its own origin).
//
// usage: node serve.mjs --port PORT --client-id ID [--proxy http://127.0.0.1:KILN_PORT]
import { createServer, request as httpRequest } from "node:http";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, arg, i, all) => {
    if (arg.startsWith("--")) pairs.push([arg.slice(2), all[i + 1]]);
    return pairs;
  }, []),
);
const port = Number(args.port || 0);
const proxy = args.proxy ? new URL(args.proxy) : null;
const bundle = join(dirname(createRequire(import.meta.url).resolve("fhirclient/package.json")), "build", "fhir-client.js");

const files = {
  "/launch.html": [join(here, "app", "launch.html"), "text/html; charset=utf-8"],
  "/index.html": [join(here, "app", "index.html"), "text/html; charset=utf-8"],
  "/fhir-client.js": [bundle, "text/javascript; charset=utf-8"],
};

function forward(req, res) {
  const upstream = httpRequest(
    { host: proxy.hostname, port: proxy.port, method: req.method, path: req.url, headers: req.headers },
    (answer) => {
      res.writeHead(answer.statusCode, answer.rawHeaders);
      answer.pipe(res);
    },
  );
  upstream.on("error", (err) => {
    res.writeHead(502, { "content-type": "text/plain" });
    res.end("proxy error: " + err.message);
  });
  req.pipe(upstream);
}

const server = createServer(async (req, res) => {
  const path = new URL(req.url, "http://x").pathname;
  if (proxy && (path.startsWith("/fhir/") || path === "/fhir" || path.startsWith("/auth/"))) return forward(req, res);
  if (path === "/favicon.ico") {
    res.writeHead(204);
    return res.end();
  }
  if (path === "/app-config.json") {
    res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
    return res.end(JSON.stringify({ clientId: args["client-id"] || "" }));
  }
  const file = files[path === "/" ? "/index.html" : path];
  if (!file || req.method !== "GET") {
    res.writeHead(404, { "content-type": "text/plain" });
    return res.end("not found");
  }
  try {
    const body = await readFile(file[0]);
    res.writeHead(200, { "content-type": file[1], "cache-control": "no-store" });
    res.end(body);
  } catch (err) {
    res.writeHead(500, { "content-type": "text/plain" });
    res.end(String(err));
  }
});
server.listen(port, "127.0.0.1", () => {
  console.log(`serve.mjs: app on http://127.0.0.1:${server.address().port}/` + (proxy ? `, /fhir and /auth -> ${proxy.origin}` : ""));
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
