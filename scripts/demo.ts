/**
 * `npm run demo` (after scripts/setup.sh): archive the Llama-2 chat handler
 * with the tiny model as `tiny-llama-2-chat`, serve it on TorchServe
 * (127.0.0.1:8080/8081/8082), send the seed's request and a chat request,
 * print both responses, and stop TorchServe. `npm run demo -- --keep` leaves
 * it running for curl; `npx tsserve stop` stops it.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { parseArgs } from "node:util";
import { createArchive } from "../src/archive/archive.ts";
import { workPaths } from "../src/client/paths.ts";
import { connect, registerWatched, runningServer, startServer, stopServer, WorkerStartError } from "../src/client/server.ts";

const MODEL = "tiny-llama-2-chat";
const SEED_REQUEST = { seed: 0, prompt: "Alan Turing was a ", max_tokens: 128, temperature: 0.7, top_p: 0.7, top_k: 50, logprobs: 0, stop: [] };
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

const say = (message: string): void => void process.stderr.write(`demo: ${message}\n`);

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { keep: { type: "boolean", default: false } }, strict: true });
  const paths = workPaths();
  if (runningServer(paths)) {
    say("a TorchServe from an earlier run is up: stopping it first");
    await stopServer({ paths });
  }

  const store = paths.defaultModelStore;
  await mkdir(store, { recursive: true });
  const archive = await createArchive(
    {
      modelName: MODEL,
      version: "1.0",
      handler: path.join(paths.root, "handlers", "llama-2-7b-chat.ts"),
      configFile: path.join(paths.root, "configs", "tiny-llama-2-chat.yaml"),
      exportPath: store,
      force: true,
    },
    { log: (m) => say(m) },
  );
  say(`archived ${path.relative(paths.root, archive.path)}`);

  await startServer({ modelStore: store, onProgress: say });
  let ok = false;
  try {
    const client = connect(paths);
    say(`registering ${MODEL} with one worker`);
    await registerWatched(client, { url: path.basename(archive.path), modelName: MODEL, initialWorkers: 1 }, paths);
    for (const [label, body] of [
      ["the seed's request", SEED_REQUEST],
      ["a chat request", CHAT_REQUEST],
    ] as const) {
      process.stdout.write(`\n== ${label}\n${JSON.stringify(body)}\n`);
      const result = await client.predict(MODEL, JSON.stringify(body));
      process.stdout.write(`== HTTP ${result.status}\n${result.body.trim()}\n`);
      if (result.status !== 200) throw new Error(`${label} answered HTTP ${result.status}`);
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
          `demo: TorchServe keeps running with ${MODEL} registered. Try:`,
          `  curl -X POST ${inference}/predictions/${MODEL} \\`,
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
