/**
 * fast-check's numRuns for a property test. `npm test` runs each property's full count; the inner loop,
 * `npm run test:unit`, sets TSSERVE_PROPERTY_FRACTION (0.1) and runs that fraction of it, never fewer than
 * fast-check's own default of 100 (docs/testing.md).
 */
export function propertyRuns(full: number): number {
  const fraction = Number(process.env.TSSERVE_PROPERTY_FRACTION ?? 1);
  if (!(fraction > 0 && fraction <= 1))
    throw new Error(`TSSERVE_PROPERTY_FRACTION must be in (0, 1], got ${process.env.TSSERVE_PROPERTY_FRACTION}`);
  return Math.max(Math.min(full, 100), Math.round(full * fraction));
}
