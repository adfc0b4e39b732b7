import { RequestFailure } from "../../../src/handler/failure.ts";

/** The RequestFailure a prompt format throws for this call; any other outcome fails the test. */
export function refusal(fn: () => unknown): RequestFailure {
  try {
    fn();
  } catch (error) {
    if (error instanceof RequestFailure) return error;
    throw error;
  }
  throw new Error("expected a RequestFailure, got a prompt");
}
