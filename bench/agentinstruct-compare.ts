/**
 * `npm run bench:agentinstruct`: AgentInstruct's two-stage evaluation (an explanation, then the answer)
 * on SmolLM2-135M-Instruct (float32, this machine's CPU), greedy, measured three ways one after another:
 *
 * - `vllm-server`: vLLM's own OpenAI server, the HELM client's two calls (`/v1/completions`), the
 *   Llama-2 chat prompts built here with tsserve's own prompt functions;
 * - `tsserve-two-calls`: the same two calls on tsserve's seed route (handlers/llama-2-7b-chat.ts, the
 *   vLLM engine), which builds the chat prompt itself, as the seed's handler did;
 * - `tsserve-one-request`: one request per question to handlers/llama-2-7b-chat-agentinstruct.ts,
 *   which runs both stages inside the request.
 *
 * `--questions` (24) questions by `--clients` (8) concurrent clients, explanations of at most
 * `--explanation-tokens` (512), answers of `--answer-tokens` (16). Figures: seconds for all questions,
 * each way against vLLM's server, explanations and answers equal to vLLM's server's, and the answers'
 * `completion_tokens`.
 *
 *   npx tsx bench/agentinstruct-compare.ts [--only vllm-server,tsserve-one-request] [--questions 4] [--out FILE]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  answerPrompt,
  answerTrigger,
  cleanExplanation,
  explanationPrompt,
  LLAMA2_CHAT_EXPLANATION_TRIGGER,
  llama2RawPrompt,
} from "../src/index.ts";
import { ROOT, SMOLLM2_PATH, serveTsserve, serveVllm, smollm2Config, type Served } from "./bench-servers.ts";
import { groupedBarsSvg } from "./svg.ts";

const KV_CACHE_MB = 1024;
const { values: args } = parseArgs({
  options: {
    only: { type: "string" },
    questions: { type: "string", default: "24" },
    clients: { type: "string", default: "8" },
    "explanation-tokens": { type: "string", default: "512" },
    "answer-tokens": { type: "string", default: "16" },
    "port-base": { type: "string", default: "39480" },
    out: { type: "string", default: path.join(ROOT, "bench", "results", "agentinstruct.json") },
    /** Rewrite the markdown table and the chart from --out's JSON, measuring nothing. */
    redraw: { type: "boolean", default: false },
  },
});
const EXPLANATION_TOKENS = Number(args["explanation-tokens"]);
const ANSWER_TOKENS = Number(args["answer-tokens"]);
const PORT = Number(args["port-base"]);

type Way = "vllm-server" | "tsserve-two-calls" | "tsserve-one-request";
const WAYS: Way[] = ["vllm-server", "tsserve-two-calls", "tsserve-one-request"];

interface Question {
  prompt: string;
  instructions: string;
  input_prefix?: string;
  output_prefix?: string;
  task: string | string[];
}
interface Answered {
  explanation: string;
  answer: string;
  answer_tokens: number;
}
interface Figures {
  seconds: number;
  load_s: number;
  answer_completion_tokens: number;
  answers: Answered[];
}

const COUNTRIES = ["France", "Japan", "Kenya", "Peru", "Canada", "Norway", "Egypt", "India"];
const PAIRS = [
  [7, 12],
  [31, 13],
  [250, 205],
  [8, 80],
  [99, 101],
  [1000, 999],
  [42, 24],
  [5, 55],
];
const WORDS = ["good morning", "thank you", "the cat", "a red apple", "see you soon", "water", "the library", "my friend"];

function questions(count: number): Question[] {
  const all: Question[] = COUNTRIES.flatMap((country, i) => {
    const [a, b] = PAIRS[i]!;
    return [
      {
        prompt: `Question: What is the capital of ${country}?\nAnswer:`,
        instructions: "1. Read the question.\n2. Answer with one word.",
        input_prefix: "Question: ",
        output_prefix: "Answer: ",
        task: "generation",
      },
      {
        prompt: `Which is larger, ${a} or ${b}?\nA. ${a}\nB. ${b}\nAnswer:`,
        instructions: "Pick the letter of the right choice.",
        task: ["A", "B"],
      },
      { prompt: `Translate '${WORDS[i]}' to French.`, instructions: "Give only the translation.", task: "generation" },
    ];
  });
  return all.slice(0, count);
}

/** The HELM client's two raw prompts: stage 1's, and stage 2's once stage 1 has answered. */
const stage1Raw = (q: Question) =>
  explanationPrompt({ instructions: q.instructions, question: q.prompt, explanationTrigger: LLAMA2_CHAT_EXPLANATION_TRIGGER });
const stage2Raw = (q: Question, explanation: string) =>
  answerPrompt({ explanationPrompt: stage1Raw(q), explanation, answerTrigger: answerTrigger(q.task), outputPrefix: q.output_prefix ?? "" });

/** What the bench reads of a completion body (the AgentInstruct handler's adds `explanation`). */
interface Completion {
  choices: { text: string }[];
  usage: { completion_tokens: number };
  explanation?: { text: string; usage: { completion_tokens: number } };
}

async function post(served: Served, route: string, body: unknown): Promise<Completion> {
  const response = await fetch(`${served.base}${route}`, {
    method: "POST",
    headers: { "Content-Type": "application/json", ...served.headers },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${route}: HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`);
  return (await response.json()) as Completion;
}

/** The two calls: `route` gets the body the client sends, `prompt` turns a raw prompt into what that route wants. */
async function twoCalls(served: Served, route: string, q: Question, prompt: (raw: string) => string, extra: object): Promise<Answered> {
  const greedy = { temperature: 0, n: 1, ...extra };
  const stop = q.input_prefix ? [q.input_prefix] : null;
  const first = await post(served, route, { ...greedy, prompt: prompt(stage1Raw(q)), max_tokens: EXPLANATION_TOKENS, stop });
  const explanation = first.choices[0]!.text;
  const second = await post(served, route, { ...greedy, prompt: prompt(stage2Raw(q, explanation)), max_tokens: ANSWER_TOKENS, stop: null });
  return { explanation: cleanExplanation(explanation), answer: second.choices[0]!.text, answer_tokens: second.usage.completion_tokens };
}

async function oneRequest(served: Served, q: Question): Promise<Answered> {
  const body = { ...q, temperature: 0, n: 1, max_tokens: ANSWER_TOKENS, explanation_max_tokens: EXPLANATION_TOKENS };
  const answer = await post(served, "/predictions/agentinstruct/1.0", body);
  const stage1 = answer.explanation!;
  return {
    explanation: stage1.text,
    answer: answer.choices[0]!.text,
    answer_tokens: answer.usage.completion_tokens - stage1.usage.completion_tokens,
  };
}

/** Every question through `ask` by --clients clients, then the server stopped. */
async function measure(served: Served, ask: (q: Question) => Promise<Answered>): Promise<Figures> {
  try {
    const all = questions(Number(args.questions));
    await ask(all[0]!); // warm-up
    const answers: Answered[] = new Array(all.length);
    let next = 0;
    const started = performance.now();
    const client = async () => {
      for (let i = next++; i < all.length; i = next++) answers[i] = await ask(all[i]!);
    };
    await Promise.all(Array.from({ length: Number(args.clients) }, client));
    const seconds = (performance.now() - started) / 1000;
    const answer_completion_tokens = answers.reduce((sum, a) => sum + a.answer_tokens, 0);
    return { seconds: round(seconds), load_s: round(served.load_s), answer_completion_tokens, answers };
  } finally {
    await served.stop();
  }
}

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const vllmEngine = `engine: "vllm"\n  kv_cache_mb: ${KV_CACHE_MB}`;
const handler = (file: string) => path.join(ROOT, "handlers", file);

async function run(way: Way): Promise<Figures> {
  if (way === "vllm-server") {
    const served = await serveVllm(SMOLLM2_PATH, PORT + 5, KV_CACHE_MB);
    return measure(served, (q) => twoCalls(served, "/v1/completions", q, llama2RawPrompt, { model: SMOLLM2_PATH }));
  }
  if (way === "tsserve-two-calls") {
    const served = await serveTsserve("bench-agentinstruct-seed", PORT, [
      { name: "seed", handler: handler("llama-2-7b-chat.ts"), config: smollm2Config(vllmEngine) },
    ]);
    return measure(served, (q) => twoCalls(served, "/predictions/seed/1.0", q, (raw) => raw, {}));
  }
  const served = await serveTsserve("bench-agentinstruct-one", PORT, [
    { name: "agentinstruct", handler: handler("llama-2-7b-chat-agentinstruct.ts"), config: smollm2Config(vllmEngine) },
  ]);
  return measure(served, (q) => oneRequest(served, q));
}

function summary(figures: Partial<Record<Way, Figures>>) {
  const reference = figures["vllm-server"];
  return Object.fromEntries(
    (Object.entries(figures) as [Way, Figures][]).map(([way, f]) => [
      way,
      {
        seconds: f.seconds,
        speed_vs_vllm_server: reference ? round(reference.seconds / f.seconds, 2) : null,
        equal_explanations: reference ? f.answers.filter((a, i) => a.explanation === reference.answers[i]?.explanation).length : null,
        equal_answers: reference ? f.answers.filter((a, i) => a.answer === reference.answers[i]?.answer).length : null,
        answer_completion_tokens: f.answer_completion_tokens,
        load_s: f.load_s,
      },
    ]),
  );
}

interface Settings {
  questions: number;
  clients: number;
  explanation_tokens: number;
  answer_tokens: number;
}
interface Report {
  date: string;
  settings: Settings;
  summary: ReturnType<typeof summary>;
  figures: Partial<Record<Way, Figures>>;
}

function markdown({ date, settings: s, summary: rows }: Report): string {
  return [
    `# bench:agentinstruct (${date}, SmolLM2-135M-Instruct float32, ${s.questions} questions by ${s.clients} clients, greedy, explanations ≤ ${s.explanation_tokens} tokens)`,
    "",
    `| way | seconds | speed vs vLLM's server | explanations equal (of ${s.questions}) | answers equal | answers' completion_tokens | start-up (s) |`,
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...Object.entries(rows).map(
      ([way, r]) =>
        `| ${way} | ${r.seconds} | ${r.speed_vs_vllm_server ?? "-"} | ${r.equal_explanations ?? "-"} | ${r.equal_answers ?? "-"} | ${r.answer_completion_tokens} | ${r.load_s} |`,
    ),
    "",
  ].join("\n");
}

const COLORS: Record<Way, string> = { "vllm-server": "#e08a1e", "tsserve-two-calls": "#7aa95c", "tsserve-one-request": "#2f6fdf" };

/** The seconds each way took for every question, as a bar chart (docs/performance.md shows it). */
function chart({ date, settings: s, summary: rows }: Report): string {
  const ways = Object.keys(rows) as Way[];
  return groupedBarsSvg({
    title: `AgentInstruct, ${s.questions} questions by ${s.clients} clients: seconds (lower is better)`,
    subtitle: `${date.slice(0, 10)} · SmolLM2-135M-Instruct float32 · greedy · explanations ≤ ${s.explanation_tokens} tokens, answers ≤ ${s.answer_tokens}`,
    series: ways.map((way) => ({ label: way, color: COLORS[way] })),
    groups: ["all questions"],
    values: [ways.map((way) => rows[way]!.seconds)],
  });
}

/** The JSON (unless redrawing it), the markdown table and the chart, side by side. */
function write(report: Report, json = true): void {
  const out = args.out!;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  if (json) fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(out.replace(/\.json$/, ".md"), markdown(report));
  fs.writeFileSync(out.replace(/\.json$/, ".svg"), chart(report));
  console.log(markdown(report));
}

async function main(): Promise<void> {
  if (args.redraw) return write(JSON.parse(fs.readFileSync(args.out!, "utf8")) as Report, false);
  const chosen = args.only ? (args.only.split(",") as Way[]) : WAYS;
  const previous = args.only && fs.existsSync(args.out!) ? (JSON.parse(fs.readFileSync(args.out!, "utf8")) as Report).figures : {};
  const figures: Partial<Record<Way, Figures>> = { ...previous };
  for (const way of chosen) {
    process.stderr.write(`bench:agentinstruct: measuring ${way}\n`);
    figures[way] = await run(way);
  }
  const settings = {
    questions: Number(args.questions),
    clients: Number(args.clients),
    explanation_tokens: EXPLANATION_TOKENS,
    answer_tokens: ANSWER_TOKENS,
  };
  write({ date: new Date().toISOString(), settings, summary: summary(figures), figures });
}

await main();
