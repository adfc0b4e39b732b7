// The handler inspector (issue 37) in a real browser: `tsserve dev` on the tiny model serves the page;
// Chromium (Debian's, driven by puppeteer-core) sends a chat request through the form, sees the
// prompt's tokens and the answer, gets a bad field's refusal at the field, and after an edit of
// the handler is saved, resends and sees the two prompts diffed. Screenshots go to .work/e2e-inspector.
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runningServer, stopServer } from "../../src/client/torchserve-process.ts";
import { workPaths } from "../../src/client/paths.ts";
import { CLI, E2E_PORT_BASE, ROOT, tinyConfig, waitFor, writeFile } from "./helpers.ts";

const MODEL = "inspect-chat";
const work = path.join(ROOT, ".work", "e2e-inspector");
const env = { ...process.env, TSSERVE_WORK_DIR: work };
const paths = workPaths(env);
const project = path.join(work, "project");
const handlerFile = path.join(project, "handlers", `${MODEL}.ts`);
const configFile = path.join(project, "configs", `${MODEL}.yaml`);
const CHROMIUM = process.env.TSSERVE_CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((file) => fs.existsSync(file));
let dev: ChildProcess;
let devLog = "";
let browser: Browser;
let page: Page;

/** Llama-2's chat format; `system`, when given, is put before the user's messages. */
function handlerSource(system?: string): string {
  const src = JSON.stringify(path.join(ROOT, "src", "index.ts"));
  const body = system
    ? [
        "  override formatPrompt(request: CompletionRequest, ctx: StageContext): string {",
        `    const system = { role: "system" as const, content: ${JSON.stringify(system)} };`,
        "    return super.formatPrompt(request.messages ? { ...request, messages: [system, ...request.messages] } : request, ctx);",
        "  }",
      ]
    : [];
  return [
    `import { Llama2ChatHandler, type CompletionRequest, type StageContext } from ${src};`,
    "",
    `export default class InspectChat extends Llama2ChatHandler {`,
    ...body,
    "}",
    "",
  ].join("\n");
}

const shot = (name: string) => page.screenshot({ path: path.join(work, `${name}.png`), fullPage: true });
const count = (selector: string) => page.$$eval(selector, (nodes) => nodes.length);

async function sendChat(): Promise<void> {
  const before = await count('[data-testid="history"] li');
  await page.select('[data-testid="route"]', "v1/chat/completions");
  await page.click('[data-testid="send"]');
  await page.waitForFunction((n) => document.querySelectorAll('[data-testid="history"] li').length > n, { timeout: 60_000 }, before);
  await page.waitForSelector('[data-testid="journey-end"]', { timeout: 60_000 });
  await page.waitForSelector('[data-testid="generated-tokens"] .chip', { timeout: 60_000 });
  // The journey comes over the live feed, the form's answer with the send's reply: either may be first.
  await page.waitForSelector('[data-testid="answer-status"]', { timeout: 60_000 });
}

describe.skipIf(!CHROMIUM)(
  `the inspector in Chromium${CHROMIUM ? "" : " (skipped: no chromium here; scripts/setup.sh installs Debian's)"}`,
  () => {
    beforeAll(async () => {
      if (runningServer(paths)) await stopServer({ paths });
      fs.rmSync(work, { recursive: true, force: true });
      writeFile(handlerFile, handlerSource());
      tinyConfig(configFile);
      dev = spawn(process.execPath, [CLI, "dev", "--handler", handlerFile, "-c", configFile, "--port-base", String(E2E_PORT_BASE)], {
        cwd: project,
        env,
        stdio: ["ignore", "ignore", "pipe"],
      });
      dev.stderr!.on("data", (chunk) => (devLog += chunk));
      const url = await waitFor(
        "tsserve dev to print the inspector's link",
        () => {
          if (dev.exitCode !== null) throw new Error(devLog);
          return /inspector: (http:\S+)/.exec(devLog)?.[1];
        },
        300_000,
        200,
      );
      browser = await puppeteer.launch({ executablePath: CHROMIUM, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
      page = await browser.newPage();
      await page.setViewport({ width: 1280, height: 900 });
      await page.goto(url);
      await page.waitForSelector('[data-testid="request-form"]');
    }, 360_000);

    afterAll(async () => {
      await browser?.close();
      if (dev && dev.exitCode === null) dev.kill("SIGINT");
      await waitFor("tsserve dev to exit", () => (dev?.exitCode ?? 0) !== null || undefined, 60_000, 200).catch(() => dev.kill("SIGKILL"));
      if (runningServer(paths)) await stopServer({ paths });
    }, 120_000);

    it("needs the inference key: the page without it is refused", async () => {
      const base = new URL(page.url()).origin;
      const response = await fetch(`${base}/api/state`);
      expect(response.status).toBe(401);
      expect((await fetch(`${base}/api/state`, { headers: { Authorization: "Bearer wrong" } })).status).toBe(401);
    });

    it("sends a chat request through the form and shows its prompt tokens, generated tokens and answer", async () => {
      await sendChat();
      const prompt = await page.$eval('[data-testid="prompt-text"]', (node) => node.textContent ?? "");
      expect(prompt).toContain("[INST]");
      expect(prompt).toContain("Tell me about tokens.");
      expect(await count('[data-testid="prompt-tokens"] .chip.special')).toBeGreaterThan(0);
      expect(await count('[data-testid="prompt-tokens"] .chip.content')).toBeGreaterThan(0);
      expect(await count('[data-testid="generated-tokens"] .chip')).toBeGreaterThan(0);
      const hover = await page.$eval('[data-testid="generated-tokens"] .chip', (node) => node.getAttribute("title") ?? "");
      expect(hover).toMatch(/p = [\d.]+%\n"/); // the top alternatives, one a line
      expect(await page.$eval('[data-testid="stages"]', (node) => node.textContent)).toMatch(/route v1\/chat\/completions [\d.]+ ms/);
      expect(await page.$eval('[data-testid="answer-status"]', (node) => node.textContent)).toBe("HTTP 200");
      expect(await page.$eval('[data-testid="journey-body"]', (node) => node.textContent)).toContain("chat.completion");
      await shot("1-chat-journey");
    }, 120_000);

    it("shows a bad field's refusal at that field, and the page keeps working", async () => {
      await page.$eval('[data-field="max_tokens"] input', (input) => {
        (input as HTMLInputElement).value = "many";
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
      await page.click('[data-testid="send"]');
      await page.waitForSelector('[data-field="max_tokens"] [data-testid="field-error"]', { timeout: 30_000 });
      expect(await page.$eval('[data-testid="answer-status"]', (node) => node.textContent)).toBe("HTTP 400");
      await shot("2-field-error");
      await page.$eval('[data-field="max_tokens"] input', (input) => {
        (input as HTMLInputElement).value = "16";
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    }, 60_000);

    it("says when a save swapped the handler, and diffs the prompt before and after", async () => {
      fs.writeFileSync(handlerFile, handlerSource("Answer in one word."));
      await page.waitForSelector('[data-testid="swap-notice"]', { timeout: 30_000 });
      expect(await page.$eval('[data-testid="swap-notice"]', (node) => node.textContent)).toContain("inspect-chat.ts");
      await sendChat();
      expect(await page.$eval('[data-testid="prompt-text"]', (node) => node.textContent)).toContain("Answer in one word.");
      const chats = await page.$$('[data-testid="history"] li');
      // Newest first: the resent chat, the refused one, the first chat.
      for (const index of [0, chats.length - 1])
        await chats[index]!.$eval('[data-testid="compare"]', (box) => (box as HTMLElement).click());
      await page.waitForSelector('[data-testid="diff"]');
      const added = await page.$$eval('[data-testid="diff"] .diff-added', (nodes) => nodes.map((node) => node.textContent).join(""));
      expect(added).toContain("word");
      await shot("3-diff");
    }, 120_000);
    it("locates a handler's exception: the stage, the .ts file:line, and its source lines", async () => {
      const throwing = 'if (request.messages) throw new TypeError("no system for you");\n    const system =';
      fs.writeFileSync(handlerFile, handlerSource("x").replace("const system =", throwing));
      await page.waitForFunction(() => document.querySelector('[data-testid="swap-notice"]')?.textContent?.includes("code version 2"), {
        timeout: 30_000,
      });
      await page.click('[data-testid="compare"]'); // untick the newest: back from the diff to the newest journey
      await page.click('[data-testid="send"]');
      await page.waitForSelector('[data-testid="journey-error"]', { timeout: 60_000 });
      const error = await page.$eval('[data-testid="journey-error"]', (node) => node.textContent ?? "");
      expect(error).toMatch(/no system for you.* at \S*inspect-chat\.ts:5:\d+/);
      await page.waitForSelector('[data-testid="source-lines"] .failing', { timeout: 10_000 });
      expect(await page.$eval('[data-testid="source-lines"] .failing', (node) => node.textContent)).toContain("throw new TypeError");
      await shot("4-error");
    }, 60_000);
  },
);
