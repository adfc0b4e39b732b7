/**
 * The handler class's config schema, read from the handler's bundle (its
 * default export is the handler class): what a model config is checked
 * against. It lives beside the bundler, not in config/, because config/ is
 * imported by the package's root, which this folder imports.
 */
import type { z } from "zod";
import { ArchiveInputError } from "../config/input-error.ts";
import { importHandlerBundle } from "./bundle.ts";

export async function loadHandlerConfigSchema(handler: string, bundlePath: string): Promise<z.ZodType<unknown>> {
  let Cls: unknown;
  try {
    Cls = await importHandlerBundle(bundlePath);
  } catch (error) {
    throw new ArchiveInputError(`cannot load handler ${handler}: ${(error as Error).message}`);
  }
  if (typeof Cls !== "function") throw new ArchiveInputError(`${handler} must export its handler class as default`);
  const instance = new (Cls as new () => { configSchema?: unknown })();
  const schema = instance.configSchema as z.ZodType<unknown> | undefined;
  if (!schema || typeof (schema as { safeParse?: unknown }).safeParse !== "function") {
    throw new ArchiveInputError(`${handler}: the handler class has no zod configSchema`);
  }
  return schema;
}
