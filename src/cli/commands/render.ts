/**
 * `tsserve render`: run a handler's own pipeline on request bodies against a
 * recording fake model, and print every prompt it passed to `generate`:
 * stdout gets exactly one JSON object, `{"prompts": [...]}`. A request the
 * handler refuses exits 2 with the refusal (naming the field or the rule) on
 * stderr, and nothing on stdout.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { parse as parseYaml } from "yaml";
import { UsageError, type Command } from "../command.ts";
import { Handler, type AnyHandler } from "../../handler/handler-class.ts";
import { parseModelConfig, resolveModelPath, type ModelConfig } from "../../config/model-config.ts";
import { describeIssues } from "../../handler/validate.ts";
import { mappedStack } from "../../handler/error-place.ts";
import { FakeModel, runHandler } from "../../testing/index.ts";
import type { ModelInfo } from "../../protocol/messages.ts";

const USAGE = `Usage: tsserve render --handler <file.ts> --request <file.json|-> [--config <file.yaml>]

Runs the handler's pipeline on the request against a recording fake model and
prints {"prompts": [...]}: every prompt the handler passed to generate, in order.

Options:
  --handler <file.ts>    handler module (its default export is the handler class)
  --request <file|->     request body as JSON (an array is one batch); - reads stdin
  --config <file.yaml>   model-config.yaml (its handler: section is checked with the
                         handler's schema; the model's tokenizer_config.json, when
                         model_path has one, supplies bos/eos/chat_template)

Exit codes: 0 rendered; 2 a request was refused, or bad usage; 1 the handler failed.`;

async function loadHandler(file: string): Promise<AnyHandler> {
  const url = pathToFileURL(path.resolve(file)).href;
  let module: { default?: unknown };
  try {
    module = await import(url);
  } catch (error) {
    throw new UsageError(`cannot load handler ${file}: ${(error as Error).message}`);
  }
  const HandlerClass = module.default;
  if (typeof HandlerClass !== "function") throw new UsageError(`${file} has no default export (export default class ... extends Handler)`);
  const handler = new (HandlerClass as new () => unknown)();
  if (!(handler instanceof Handler)) throw new UsageError(`${file}: the default export is not a Handler subclass`);
  return handler;
}

async function readRequest(source: string): Promise<unknown> {
  let text: string;
  try {
    text = source === "-" ? await readStdin() : await readFile(source, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read request ${source}: ${(error as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`request ${source === "-" ? "(stdin)" : source} is not JSON: ${(error as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The model facts a real shim would report, as far as the model folder tells them. */
async function modelInfo(configFile: string | undefined, config: Record<string, unknown> | undefined): Promise<Partial<ModelInfo>> {
  const handler = config?.handler as { model_path?: unknown; tokenizer_path?: unknown } | undefined;
  const dir = handler?.tokenizer_path ?? handler?.model_path;
  if (!configFile || typeof dir !== "string") return {};
  const info: Partial<ModelInfo> = { name_or_path: dir };
  const folder = resolveModelPath(configFile, dir);
  try {
    const tc = JSON.parse(await readFile(path.join(folder, "tokenizer_config.json"), "utf8"));
    const token = (t: unknown) =>
      typeof t === "string"
        ? t
        : typeof (t as { content?: unknown })?.content === "string"
          ? (t as { content: string }).content
          : undefined;
    if (token(tc.bos_token) !== undefined) info.bos_token = token(tc.bos_token)!;
    if (token(tc.eos_token) !== undefined) info.eos_token = token(tc.eos_token)!;
    if (typeof tc.chat_template === "string") info.chat_template = tc.chat_template;
  } catch {
    // No readable tokenizer_config.json: the fake model's defaults stand.
  }
  // transformers 5 saves the template beside tokenizer_config.json, and loads it from there first.
  info.chat_template = (await readFile(path.join(folder, "chat_template.jinja"), "utf8").catch(() => undefined)) ?? info.chat_template;
  return info;
}

const render: Command = {
  name: "render",
  summary: "print the prompts a handler builds for a request (offline, no model)",
  usage: USAGE,
  options: {
    handler: { type: "string" },
    request: { type: "string" },
    config: { type: "string" },
  },
  async run({ values }) {
    const handlerFile = values.handler as string | undefined;
    const requestFile = values.request as string | undefined;
    const configFile = values.config as string | undefined;
    if (!handlerFile) throw new UsageError("--handler <file.ts> is required");
    if (!requestFile) throw new UsageError("--request <file.json|-> is required");

    const handler = await loadHandler(handlerFile);
    let rawConfig: Record<string, unknown> | undefined;
    if (configFile) {
      try {
        rawConfig = parseYaml(await readFile(configFile, "utf8")) as Record<string, unknown>;
      } catch (error) {
        throw new UsageError(`cannot read config ${configFile}: ${(error as Error).message}`);
      }
      const parsed = parseModelConfig(rawConfig, handler.configSchema);
      if (!parsed.success) throw new UsageError(`config ${configFile}: ${describeIssues(parsed.error).message}`);
    }
    const body = await readRequest(requestFile);
    const bodies = Array.isArray(body) ? body : [body];

    const model = new FakeModel({ info: await modelInfo(configFile, rawConfig) });
    const thrown: Error[] = [];
    const { outcomes } = await runHandler(handler, bodies, {
      model,
      onThrown: (error) => thrown.push(error),
      ...(rawConfig ? { config: rawConfig as Partial<ModelConfig> & { handler?: Record<string, unknown> } } : {}),
      modelName: path.basename(handlerFile).replace(/\.[cm]?[jt]s$/, ""),
    });
    const failures = outcomes.flatMap((outcome, index) => (outcome.ok ? [] : [{ index, ...outcome }]));
    if (failures.length > 0) {
      for (const f of failures) {
        const where = bodies.length > 1 ? `request ${f.index}: ` : "";
        process.stderr.write(`tsserve render: ${where}${f.status < 500 ? "refused" : "failed"} (${f.status}): ${f.message}\n`);
      }
      for (const error of thrown) process.stderr.write(`${mappedStack(error)}\n`);
      return failures.every((f) => f.status < 500) ? 2 : 1;
    }
    process.stdout.write(`${JSON.stringify({ prompts: model.prompts })}\n`);
    return 0;
  },
};

export default render;
