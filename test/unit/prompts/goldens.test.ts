/**
 * The TypeScript prompt formats against goldens rendered by independent
 * references (transformers' apply_chat_template, FastChat's conversation
 * template, the seed's Python string chain): scripts/make-prompt-goldens.py.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  agentInstructRewrite,
  llama2ChatPrompt,
  LLAMA2_RAW_PROMPT_PREFIX,
  renderChatTemplate,
  vicunaV11Prompt,
  type ChatMessage,
} from "../../../src/prompts/index.ts";
import { refusal } from "./refusal.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const FIXTURES = path.join(ROOT, "test/fixtures/prompts");
const load = <T>(name: string): T => JSON.parse(readFileSync(path.join(FIXTURES, name), "utf8")) as T;

interface ChatCase {
  name: string;
  messages: ChatMessage[];
  expected?: string;
  error?: string;
  add_generation_prompt?: boolean;
}

const llama = load<{ template: string; bos_token: string; eos_token: string; cases: ChatCase[] }>("llama-2-chat.json");
const vicuna = load<{ cases: ChatCase[] }>("vicuna-v1.1.json");
const agent = load<{ llama2_prefix: string; cases: { name: string; prompt: string; expected: string }[] }>("agentinstruct.json");
const templates = load<{ bos_token: string; eos_token: string; templates: { name: string; template: string; cases: ChatCase[] }[] }>(
  "chat-templates.json",
);

describe("Llama-2 chat format matches transformers' apply_chat_template with the published template", () => {
  it("has both rendered and refused cases", () => {
    expect(llama.cases.filter((c) => c.expected !== undefined).length).toBeGreaterThanOrEqual(10);
    expect(llama.cases.filter((c) => c.error !== undefined).length).toBeGreaterThanOrEqual(3);
  });
  for (const c of llama.cases) {
    if (c.expected !== undefined) {
      it(`renders "${c.name}" byte for byte`, () => {
        expect(llama2ChatPrompt(c.messages, { bosToken: llama.bos_token, eosToken: llama.eos_token })).toBe(c.expected);
      });
    } else {
      it(`refuses "${c.name}" as the template does, naming the message`, () => {
        const failure = refusal(() => llama2ChatPrompt(c.messages));
        expect(failure.status).toBe(400);
        expect(failure.field).toMatch(/^messages\.\d+\.role$/);
        expect(failure.message).toMatch(/^messages\.\d+\.role: .*alternate/);
      });
    }
  }
});

describe("Vicuna v1.1 format matches FastChat's vicuna_v1.1 conversation", () => {
  for (const c of vicuna.cases) {
    it(`renders "${c.name}" byte for byte`, () => {
      expect(vicunaV11Prompt(c.messages)).toBe(c.expected);
    });
  }
});

describe("AgentInstruct rewrite matches the seed's Python replace chain", () => {
  it("uses the Llama-2 raw prefix the fixtures were made with", () => {
    expect(LLAMA2_RAW_PROMPT_PREFIX).toBe(agent.llama2_prefix);
  });
  for (const c of agent.cases) {
    it(`rewrites "${c.name}" byte for byte`, () => {
      expect(agentInstructRewrite(c.prompt)).toBe(c.expected);
    });
  }
});

describe("generic chat templates render as transformers renders them", () => {
  for (const t of templates.templates) {
    for (const c of t.cases) {
      const label = `${t.name}: "${c.name}" (add_generation_prompt ${c.add_generation_prompt})`;
      if (c.expected !== undefined) {
        it(`renders ${label} byte for byte`, () => {
          expect(
            renderChatTemplate(t.template, c.messages, {
              bosToken: templates.bos_token,
              eosToken: templates.eos_token,
              addGenerationPrompt: c.add_generation_prompt ?? true,
            }),
          ).toBe(c.expected);
        });
      } else {
        it(`refuses ${label} with the template's own message`, () => {
          const failure = refusal(() =>
            renderChatTemplate(t.template, c.messages, { addGenerationPrompt: c.add_generation_prompt ?? true }),
          );
          expect(failure.status).toBe(400);
          expect(failure.field).toBe("messages");
          expect(failure.message).toBe(`messages: ${c.error}`);
        });
      }
    }
  }
});

const python = path.join(ROOT, ".venv/bin/python");
describe.skipIf(!existsSync(python))("golden fixtures", () => {
  it("are what scripts/make-prompt-goldens.py renders now (not stale)", () => {
    const out = mkdtempSync(path.join(tmpdir(), "tsserve-goldens-"));
    try {
      execFileSync(python, [path.join(ROOT, "scripts/make-prompt-goldens.py"), "--out", out], { stdio: ["ignore", "ignore", "pipe"] });
      const names = readdirSync(FIXTURES).sort();
      expect(readdirSync(out).sort()).toEqual(names);
      for (const name of names) {
        expect(readFileSync(path.join(out, name), "utf8"), `${name} is stale: run .venv/bin/python scripts/make-prompt-goldens.py`).toBe(
          readFileSync(path.join(FIXTURES, name), "utf8"),
        );
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);
});
