import { setTimeout as sleep } from "node:timers/promises";
import { connect } from "../../client/torchserve-process.ts";
import { parseExposition } from "../../metrics/exposition.ts";
import { renderTop, topRows, type Scrape } from "../../metrics/top.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve top [--metrics-url URL] [--interval SECONDS] [--once]

A live view of the running TorchServe, read from its metrics API: per model, requests and tokens per
second, time to first token (p50, p95), sequences running and waiting, KV-cache usage and errors
(docs/operations.md, "Metrics"). Refreshes every second in place; q or Ctrl-C quits.

Options:
  --metrics-url URL    the metrics API (default: the running server's metrics_address)
  --interval SECONDS   time between refreshes (default 1)
  --once               print one view (two scrapes an interval apart) and exit`;

async function scrape(url: string): Promise<Scrape> {
  const response = await fetch(`${url.replace(/\/$/, "")}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`${url}/metrics answered ${response.status}`);
  return { at: Date.now(), samples: parseExposition(await response.text()) };
}

/** Quits on q or Ctrl-C when stdin is a terminal. */
function onQuit(quit: () => void): () => void {
  if (!process.stdin.isTTY) return () => {};
  process.stdin.setRawMode(true);
  process.stdin.resume();
  const listener = (key: Buffer) => {
    if (key[0] === 0x71 || key[0] === 0x03) quit();
  };
  process.stdin.on("data", listener);
  return () => {
    process.stdin.off("data", listener);
    process.stdin.setRawMode(false);
    process.stdin.pause();
  };
}

const command: Command = {
  name: "top",
  summary: "a live view of the running server's models: requests/s, tokens/s, TTFT, load, errors",
  usage,
  options: { "metrics-url": { type: "string" }, interval: { type: "string" }, once: { type: "boolean" } },
  async run({ values }) {
    const interval = values.interval === undefined ? 1 : Number(values.interval);
    if (!Number.isFinite(interval) || interval <= 0)
      throw new UsageError(`--interval ${String(values.interval)}: must be a number of seconds above 0`);
    const url = (values["metrics-url"] as string | undefined) ?? connect().addresses.metrics;
    let previous: Scrape;
    try {
      previous = await scrape(url);
    } catch (error) {
      process.stderr.write(
        `tsserve top: cannot read ${url}/metrics: ${(error as Error).message} (is the server running? tsserve status)\n`,
      );
      return 1;
    }
    let running = true;
    const stop = onQuit(() => (running = false));
    try {
      while (running) {
        await sleep(interval * 1000);
        const current = await scrape(url).catch(() => undefined);
        if (current === undefined) continue;
        const view = renderTop(topRows(previous, current), url, new Date(current.at));
        process.stdout.write(values.once || !process.stdout.isTTY ? view : `\x1b[H\x1b[2J${view}`);
        previous = current;
        if (values.once) break;
      }
    } finally {
      stop();
    }
  },
};

export default command;
