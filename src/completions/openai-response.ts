/**
 * The handler's completion bodies as OpenAI's responses: a text completion
 * (the prompts' choices in one list, index = prompt * n + choice), a chat
 * completion, and the chunks of both when streamed.
 */
import type { ChoiceLogprobs, CompletionChunk, CompletionResponse, Usage } from "./response.ts";

/** What every response and chunk of one call shares. */
export interface CallHeader {
  id: string;
  created: number;
  model: string;
}

interface OpenAICompletionChoice {
  text: string;
  index: number;
  finish_reason: "stop" | "length" | null;
  logprobs: ChoiceLogprobs | null;
}

interface OpenAICompletion extends CallHeader {
  object: "text_completion";
  choices: OpenAICompletionChoice[];
  usage?: Usage;
}

interface ChatTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[];
  top_logprobs: { token: string; logprob: number; bytes: number[] }[];
}

interface ChatLogprobs {
  content: ChatTokenLogprob[];
}

interface OpenAIChatCompletion extends CallHeader {
  object: "chat.completion";
  choices: {
    index: number;
    message: { role: "assistant"; content: string };
    finish_reason: "stop" | "length";
    logprobs: ChatLogprobs | null;
  }[];
  usage: Usage;
}

interface OpenAIChatChunk extends CallHeader {
  object: "chat.completion.chunk";
  choices: {
    index: number;
    delta: { role?: "assistant"; content?: string };
    finish_reason: "stop" | "length" | null;
    logprobs: ChatLogprobs | null;
  }[];
  usage?: Usage;
}

/** `top` alternatives at most per token (null: the client asked for no logprobs). */
function trimLogprobs(lp: ChoiceLogprobs | null, top: number | null): ChoiceLogprobs | null {
  if (lp === null || top === null) return null;
  return { ...lp, top_logprobs: lp.top_logprobs.map((alternatives) => topEntries(alternatives, top)) };
}

function topEntries(alternatives: Record<string, number> | null, top: number): Record<string, number> | null {
  if (alternatives === null || top === 0) return null;
  return Object.fromEntries(
    Object.entries(alternatives)
      .sort((a, b) => b[1] - a[1])
      .slice(0, top),
  );
}

export function sumUsage(usages: readonly Usage[]): Usage {
  const prompt = usages.reduce((sum, u) => sum + u.prompt_tokens, 0);
  const completion = usages.reduce((sum, u) => sum + u.completion_tokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

type HandlerChoice = CompletionResponse["choices"][number] | CompletionChunk["choices"][number];

/** A handler's choice for prompt `prompt` as its place in the text completion's one list of choices. */
function completionChoice(choice: HandlerChoice, prompt: number, n: number, logprobs: number | null): OpenAICompletionChoice {
  return {
    text: choice.text,
    index: prompt * n + choice.index,
    finish_reason: choice.finish_reason,
    logprobs: trimLogprobs(choice.logprobs, logprobs),
  };
}

/** One text completion from the handler's bodies, one body per prompt, each with `n` choices. */
export function openaiCompletion(
  header: CallHeader,
  bodies: readonly CompletionResponse[],
  n: number,
  logprobs: number | null,
): OpenAICompletion {
  return {
    ...header,
    object: "text_completion",
    choices: bodies.flatMap((body, prompt) => body.choices.map((choice) => completionChoice(choice, prompt, n, logprobs))),
    usage: sumUsage(bodies.map((body) => body.usage)),
  };
}

/** One streamed chunk of a text completion, from the handler's chunk for prompt `prompt`. */
export function openaiCompletionChunk(
  header: CallHeader,
  chunk: CompletionChunk,
  prompt: number,
  n: number,
  logprobs: number | null,
): OpenAICompletion {
  return {
    ...header,
    object: "text_completion",
    choices: chunk.choices.map((choice) => completionChoice(choice, prompt, n, logprobs)),
  };
}

/** The chunk that closes each choice of a streamed text completion. */
export function openaiCompletionFinish(header: CallHeader, bodies: readonly CompletionResponse[], n: number): OpenAICompletion {
  return {
    ...header,
    object: "text_completion",
    choices: bodies.flatMap((body, prompt) =>
      body.choices.map((choice) => ({
        text: "",
        index: prompt * n + choice.index,
        finish_reason: choice.finish_reason,
        logprobs: null,
      })),
    ),
  };
}

/** Text as OpenAI's `bytes`: its UTF-8 code units. */
const utf8 = (text: string): number[] => [...Buffer.from(text, "utf8")];

/** A choice's token logprobs in chat's shape (`top` alternatives per token). */
function chatLogprobs(lp: ChoiceLogprobs | null, top: number | null): ChatLogprobs | null {
  if (lp === null || top === null) return null;
  return {
    content: lp.tokens.map((token, i) => ({
      token,
      logprob: lp.token_logprobs[i] ?? 0,
      bytes: utf8(token),
      top_logprobs: Object.entries(topEntries(lp.top_logprobs[i] ?? null, top) ?? {}).map(([alternative, logprob]) => ({
        token: alternative,
        logprob,
        bytes: utf8(alternative),
      })),
    })),
  };
}

export function openaiChatCompletion(header: CallHeader, body: CompletionResponse, logprobs: number | null): OpenAIChatCompletion {
  return {
    ...header,
    object: "chat.completion",
    choices: body.choices.map((choice) => ({
      index: choice.index,
      message: { role: "assistant", content: choice.text },
      finish_reason: choice.finish_reason,
      logprobs: chatLogprobs(choice.logprobs, logprobs),
    })),
    usage: body.usage,
  };
}

/** One streamed chat chunk; `first` says whether this is the choice's first delta (it carries the role). */
export function openaiChatChunk(
  header: CallHeader,
  chunk: CompletionChunk,
  logprobs: number | null,
  first: (index: number) => boolean,
): OpenAIChatChunk {
  return {
    ...header,
    object: "chat.completion.chunk",
    choices: chunk.choices.map((choice) => ({
      index: choice.index,
      delta: first(choice.index) ? { role: "assistant", content: choice.text } : { content: choice.text },
      finish_reason: null,
      logprobs: chatLogprobs(choice.logprobs, logprobs),
    })),
  };
}

/** The chunk that closes each choice of a streamed chat completion. */
export function openaiChatFinish(header: CallHeader, body: CompletionResponse, first: (index: number) => boolean): OpenAIChatChunk {
  return {
    ...header,
    object: "chat.completion.chunk",
    choices: body.choices.map((choice) => ({
      index: choice.index,
      delta: first(choice.index) ? { role: "assistant", content: "" } : {},
      finish_reason: choice.finish_reason,
      logprobs: null,
    })),
  };
}
