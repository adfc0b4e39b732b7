/** The page's HTML shell: the bundled script (dist/inspector/page.js) draws everything. */
export function pageHtml(modelName: string): string {
  const title = `tsserve inspector: ${modelName.replace(/[<>&"]/g, "")}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="/page.css"></head>
<body><div id="app">loading…</div><script type="module" src="/page.js"></script></body></html>
`;
}

export const UNAUTHORIZED_HTML = `<!doctype html><meta charset="utf-8"><title>tsserve inspector</title>
<p>This page needs TorchServe's inference key: open the link <code>tsserve dev</code> printed (it carries the key once and sets a cookie).</p>`;
