/** The request form: a route, its fields, Send; the server's answer below, a refusal shown at the field it names. */
import { useState } from "preact/hooks";
import type { Hello } from "../journey-store.ts";
import { html } from "./html.ts";
import { bodyOf, newField, otherFields, prefilledFields, type FormField } from "./request-form-fields.ts";

interface Answer {
  status: number;
  body: string;
  field?: string;
  message?: string;
}

const FORM_ROUTES = ["", "v1/completions", "v1/chat/completions"];

function refusal(status: number, body: string): Pick<Answer, "field" | "message"> {
  if (status < 400) return {};
  try {
    // tsserve's own refusals name the field `field`; the OpenAI routes' name it `param`.
    const error = (JSON.parse(body) as { error?: { message?: string; field?: string; param?: string } }).error;
    const field = error?.field ?? error?.param;
    return { ...(field ? { field } : {}), message: error?.message ?? body };
  } catch {
    return { message: body };
  }
}

async function send(route: string, fields: readonly FormField[]): Promise<Answer> {
  const response = await fetch("/api/send", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ route, body: bodyOf(fields) }),
  });
  const answer = (await response.json()) as { status: number; body: string };
  return { status: answer.status, body: answer.body, ...refusal(answer.status, answer.body) };
}

function FieldRow({ field, error, onText }: { field: FormField; error: string | undefined; onText: (text: string) => void }) {
  const tall = field.type === "array" || field.type === "object" || field.name === "prompt";
  const input = (event: Event) => onText((event.target as HTMLInputElement).value);
  return html`<label class=${`field ${error ? "invalid" : ""}`} data-field=${field.name}>
    <span>${field.name} <small>${field.type}</small></span>
    ${tall ? html`<textarea rows="3" value=${field.text} onInput=${input} />` : html`<input value=${field.text} onInput=${input} />`}
    ${error ? html`<em class="field-error" data-testid="field-error">${error}</em>` : null}
  </label>`;
}

export function RequestForm({ hello }: { hello: Hello | null }) {
  const schema = hello?.requestSchema ?? null;
  const routes = FORM_ROUTES.filter((route) => route === "" || hello?.routes.includes(route));
  const [route, setRoute] = useState("");
  const [fields, setFields] = useState<FormField[]>(() => prefilledFields(schema, ""));
  const [answer, setAnswer] = useState<Answer | undefined>();
  const [sending, setSending] = useState(false);
  const pick = (next: string) => {
    setRoute(next);
    setFields(prefilledFields(schema, next));
    setAnswer(undefined);
  };
  const submit = async (event: Event) => {
    event.preventDefault();
    setSending(true);
    setAnswer(await send(route, fields).catch((error: Error) => ({ status: 0, body: "", message: `not sent: ${error.message}` })));
    setSending(false);
  };
  const unplaced = answer?.message && !fields.some((field) => field.name === answer.field) ? answer.message : undefined;
  return html`<form class="request-form" data-testid="request-form" onSubmit=${submit}>
    <h2>Request</h2>
    <label class="field"><span>route</span>
      <select data-testid="route" value=${route} onChange=${(event: Event) => pick((event.target as HTMLSelectElement).value)}>
        ${routes.map((r) => html`<option value=${r}>/${r || "(the model's path)"}</option>`)}
      </select>
    </label>
    ${fields.map(
      (field, k) => html`<${FieldRow} field=${field} error=${answer?.field === field.name ? answer.message : undefined}
      onText=${(text: string) => setFields(fields.map((f, j) => (j === k ? { ...f, text } : f)))} />`,
    )}
    <select data-testid="add-field" value="" onChange=${(event: Event) => setFields([...fields, newField(schema, (event.target as HTMLSelectElement).value)])}>
      <option value="">add a field…</option>
      ${otherFields(schema, fields).map((name) => html`<option value=${name}>${name}</option>`)}
    </select>
    <button type="submit" data-testid="send" disabled=${sending}>${sending ? "Sending…" : "Send"}</button>
    ${unplaced ? html`<p class="error" data-testid="form-error">${unplaced}</p>` : null}
    ${answer ? html`<p class="facts" data-testid="answer-status">HTTP ${answer.status}</p><pre class="answer" data-testid="answer-body">${answer.body}</pre>` : null}
  </form>`;
}
