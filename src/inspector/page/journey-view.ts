/** One request's journey: its body, each model call (prompt, tokens, answer), the stages' times and what it answered. */
import type { Journey, ModelCall } from "../journal.ts";
import { SourceView } from "./source-view.ts";
import { html } from "./html.ts";
import { TokenChips } from "./token-chips-view.ts";

const ms = (value: number) => `${value.toFixed(1)} ms`;
const pretty = (value: unknown) => (typeof value === "string" ? value : JSON.stringify(value, null, 2));

function CallOutcome({ call }: { call: ModelCall }) {
  const outcome = call.outcome;
  if (!outcome.ok)
    return html`<p class="error">refused: ${outcome.status} ${outcome.message}${outcome.field ? ` (field ${outcome.field})` : ""}</p>`;
  const cached = outcome.cachedTokens === undefined ? "" : `, ${outcome.cachedTokens} from the prefix cache`;
  const timings = `model ${ms(outcome.computeMs)} · call ${ms(call.ms)}`;
  return html`<div>
    <h4>Generated (${outcome.tokens.length} tokens, coloured by probability; hover for the alternatives)</h4>
    <${TokenChips} chips=${outcome.tokens} testId="generated-tokens" />
    <p class="facts" data-testid="finish">
      finish: <b>${outcome.finishReason === "stop" ? "stop (EOS or a stop sequence cut here)" : "length (max_tokens reached)"}</b> · prompt tokens ${outcome.promptTokens}${cached} · ${timings}
    </p>
  </div>`;
}

function CallView({ call }: { call: ModelCall }) {
  return html`<section class="call" data-testid="model-call">
    <h3>Model call ${call.call}</h3>
    <p class="facts">${Object.entries(call.params)
      .map(([key, value]) => `${key} ${JSON.stringify(value)}`)
      .join(" · ")}</p>
    ${call.structured ? html`<details><summary>structured output</summary><pre>${pretty(call.structured)}</pre></details>` : null}
    <h4>Prompt</h4>
    <pre class="prompt" data-testid="prompt-text">${call.prompt}</pre>
    <h4>Prompt tokens (${call.promptChips.length}: <span class="chip special">special</span> <span class="chip template">template</span> <span class="chip content">content</span>)</h4>
    <${TokenChips} chips=${call.promptChips} testId="prompt-tokens" />
    <${CallOutcome} call=${call} />
  </section>`;
}

function EndView({ journey }: { journey: Journey }) {
  const end = journey.end;
  if (!end) return html`<p class="pending">running…</p>`;
  const error = end.error;
  return html`<section data-testid="journey-end">
    <h3>Answer: HTTP ${end.status}</h3>
    ${
      error
        ? html`<p class="error" data-testid="journey-error">
          ${error.stage ? `${error.stage}: ` : ""}${error.message}${error.field ? ` (field ${error.field})` : ""}${error.location ? html` at <code>${error.location}</code>` : ""}
        </p>`
        : null
    }
    ${error?.location ? html`<${SourceView} location=${error.location} />` : null}
    <pre data-testid="journey-body">${pretty(end.body)}</pre>
  </section>`;
}

export function JourneyView({ journey }: { journey: Journey }) {
  return html`<article class="journey" data-testid="journey">
    <h2>/${journey.route || "(the model's path)"} <small>code version ${journey.codeVersion} · ${new Date(journey.at).toLocaleTimeString()}</small></h2>
    <details open><summary>request body</summary><pre>${pretty(journey.body)}</pre></details>
    ${journey.calls.map((call) => html`<${CallView} call=${call} />`)}
    ${journey.streamed && !journey.end ? html`<h4>Streaming</h4><pre data-testid="streamed">${journey.streamed}</pre>` : null}
    ${
      journey.stages.length > 0
        ? html`<p class="facts" data-testid="stages">Node child: ${journey.stages.map((stage) => `${stage.stage} ${ms(stage.ms)}`).join(" · ")}</p>`
        : null
    }
    <${EndView} journey=${journey} />
  </article>`;
}
