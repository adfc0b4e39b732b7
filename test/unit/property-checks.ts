/**
 * expect() for property tests that check 10,000 cases: the comparison runs plainly, and expect() runs only
 * on a mismatch, to fail with its usual message. expect() per case was about a third of such a test's time.
 * A strict match implies the expect() below it would pass (both compare primitives with Object.is).
 */
import { isDeepStrictEqual } from "node:util";
import { expect } from "vitest";

/** expect(actual).toBe(expected). */
export function expectSame(actual: unknown, expected: unknown): void {
  if (!Object.is(actual, expected)) expect(actual).toBe(expected);
}

/** expect(actual).toEqual(expected). */
export function expectEqualValue(actual: unknown, expected: unknown): void {
  if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
}

/** expect(condition, what).toBe(true). */
export function expectTrue(condition: boolean, what: string): void {
  if (!condition) expect(condition, what).toBe(true);
}
