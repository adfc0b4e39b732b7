/**
 * One file per command under ./commands, each exporting a `Command`. Options
 * are parsed with node:util parseArgs; a UsageError prints usage and exits 2.
 */
import type { ParseArgsConfig } from "node:util";

export interface Command {
  readonly name: string;
  readonly summary: string;
  readonly usage: string;
  readonly options: NonNullable<ParseArgsConfig["options"]>;
  /** Accepts positionals. */
  readonly positionals?: boolean;
  // biome-ignore lint/suspicious/noConfusingVoidType: a run() with no return statement exits 0, and only void admits it
  run(args: { values: Record<string, unknown>; positionals: string[] }): Promise<number | void>;
}

/** A mistake in how the command was called, or input it refuses: exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode = 2,
  ) {
    super(message);
    this.name = "UsageError";
  }
}
