/** Preact components written as tagged templates (htm, bound to preact's h): no JSX step in the build. */
export { html } from "htm/preact";
