/** The bundle's file name, in an archive and wherever a worker runs it, and its source map's. */
export const BUNDLE_FILE = "handler.mjs";
export const BUNDLE_MAP_FILE = `${BUNDLE_FILE}.map`;
