import path from "node:path";
import { UsageError, type Command } from "../command.ts";
import { bundleHandler } from "../../bundle/bundle.ts";

const command: Command = {
  name: "bundle",
  summary: "bundle a TypeScript handler into one ESM file that runs with plain node",
  usage: "Usage: tsserve bundle --handler <file.ts> --out <dir>\n\nWrites <dir>/handler.mjs and its source map.",
  options: {
    handler: { type: "string" },
    out: { type: "string" },
  },
  async run({ values }) {
    if (typeof values.handler !== "string") throw new UsageError("--handler <file.ts> is required");
    if (typeof values.out !== "string") throw new UsageError("--out <dir> is required");
    const { bundlePath } = await bundleHandler({ handler: values.handler, outDir: values.out });
    process.stdout.write(`${path.relative(process.cwd(), bundlePath)}\n`);
  },
};
export default command;
