/** The handler's source lines around an error's place, the failing line marked. */
import { useEffect, useState } from "preact/hooks";
import type { SourceLines } from "../source-lines.ts";
import { html } from "./html.ts";

export function SourceView({ location }: { location: string }) {
  const [source, setSource] = useState<SourceLines | null | undefined>();
  useEffect(() => {
    fetch(`/api/source?location=${encodeURIComponent(location)}`)
      .then((response) => (response.ok ? (response.json() as Promise<SourceLines>) : null))
      .then(setSource, () => setSource(null));
  }, [location]);
  if (!source) return null;
  return html`<pre class="source" data-testid="source-lines">${source.lines.map(
    (line) =>
      html`<span class=${line.number === source.line ? "failing" : ""}>${`${String(line.number).padStart(4)}  ${line.text}\n`}</span>`,
  )}</pre>`;
}
