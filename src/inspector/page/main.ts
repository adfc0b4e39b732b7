/** The inspector page's entry (bundled by scripts/build-cli.ts into dist/inspector/page.js and page.css). */
import { h, render } from "preact";
import { App } from "./app.ts";
import "./page.css";

const app = document.getElementById("app")!;
app.textContent = ""; // the shell's "loading…"
render(h(App, {}), app);
