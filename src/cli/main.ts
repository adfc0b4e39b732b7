import { readFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { PACKAGE_ROOT } from "../package-root.ts";
import { UsageError, type Command } from "./command.ts";

/** Commands load lazily, so `tsserve render` never pays for the archiver's imports. */
const COMMANDS: Record<string, () => Promise<Command>> = {
  render: async () => (await import("./commands/render.ts")).default,
  init: async () => (await import("./commands/init.ts")).default,
  bundle: async () => (await import("./commands/bundle.ts")).default,
  archive: async () => (await import("./commands/archive.ts")).default,
  start: async () => (await import("./commands/start.ts")).default,
  stop: async () => (await import("./commands/stop.ts")).default,
  register: async () => (await import("./commands/register.ts")).default,
  dev: async () => (await import("./commands/dev.ts")).default,
  unregister: async () => (await import("./commands/unregister.ts")).default,
  "restart-workers": async () => (await import("./commands/restart-workers.ts")).default,
  status: async () => (await import("./commands/status.ts")).default,
  top: async () => (await import("./commands/top.ts")).default,
  logs: async () => (await import("./commands/logs.ts")).default,
  predict: async () => (await import("./commands/predict.ts")).default,
  token: async () => (await import("./commands/token.ts")).default,
  setup: async () => (await import("./commands/setup.ts")).default,
  kserve: async () => (await import("./commands/kserve.ts")).default,
};

/** The commands' names, as `tsserve <name>` takes them. */
export const COMMAND_NAMES: readonly string[] = Object.keys(COMMANDS);

/** The command called `name`, or undefined when there is none. */
export async function loadCommand(name: string): Promise<Command | undefined> {
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  return load ? await load() : undefined;
}

const NAME_WIDTH = Math.max(...COMMAND_NAMES.map((name) => name.length));

async function usage(): Promise<string> {
  const lines = ["Usage: tsserve <command> [options]", "", "Commands:"];
  for (const load of Object.values(COMMANDS)) {
    const command = await load().catch(() => undefined);
    if (command) lines.push(`  ${command.name.padEnd(NAME_WIDTH)} ${command.summary}`);
  }
  lines.push(
    "",
    "Run `tsserve help <command>` (or `tsserve <command> --help`) for a command's options; `tsserve --version` for the version.",
  );
  return lines.join("\n");
}

/** The version of the tsserve package that runs. */
function version(): string {
  return (JSON.parse(readFileSync(path.join(PACKAGE_ROOT, "package.json"), "utf8")) as { version: string }).version;
}

/**
 * A TorchServe that does not answer: fetch's bare `TypeError: fetch failed`,
 * said in words, with where it looked and what to do.
 */
function unreachableServer(error: unknown): string | undefined {
  if (!(error instanceof TypeError) || error.message !== "fetch failed") return undefined;
  const cause = (error as { cause?: { code?: string; address?: string; port?: number } }).cause;
  const where = cause?.address !== undefined ? ` at ${cause.address}:${cause.port}` : "";
  if (cause?.code === "ECONNREFUSED") return `TorchServe is not running${where} (connection refused): start it with \`tsserve start\``;
  return `cannot reach TorchServe${where}: ${cause?.code ?? "the request failed"} (is it running? \`tsserve status\` says)`;
}

export async function runMain(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V" || name === "version") {
    process.stdout.write(`${version()}\n`);
    return;
  }
  if (name === "help" && rest.length > 0) {
    const command = await loadCommand(rest[0]!);
    if (!command) {
      process.stderr.write(`tsserve help: unknown command "${rest[0]}"\n\n${await usage()}\n`);
      process.exitCode = 2;
      return;
    }
    process.stdout.write(`${command.usage}\n`);
    return;
  }
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${await usage()}\n`);
    process.exitCode = name === undefined ? 2 : 0;
    return;
  }
  const command = await loadCommand(name);
  if (!command) {
    process.stderr.write(`tsserve: unknown command "${name}"\n\n${await usage()}\n`);
    process.exitCode = 2;
    return;
  }
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${command.usage}\n`);
    return;
  }
  try {
    const { values, positionals } = parseArgs({
      args: rest,
      options: command.options,
      allowPositionals: command.positionals ?? false,
      strict: true,
    });
    const code = await command.run({ values, positionals });
    process.exitCode = code ?? 0;
  } catch (error) {
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      const exitCode = error instanceof UsageError ? error.exitCode : 2;
      process.stderr.write(`tsserve ${name}: ${(error as Error).message}\n`);
      if (!(error instanceof UsageError)) process.stderr.write(`\n${command.usage}\n`);
      process.exitCode = exitCode;
      return;
    }
    const unreachable = unreachableServer(error);
    process.stderr.write(`tsserve ${name}: ${unreachable ?? (error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  }
}
