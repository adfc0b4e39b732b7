/**
 * Input refused before anything is written: a model config that does not read
 * or does not match its handler's schema, a handler that does not load, bad
 * archiver options. `tsserve archive` exits 2 on it; `tsserve dev` reports its
 * message alone. It keeps the archiver's name, which is where it began.
 */
export class ArchiveInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArchiveInputError";
  }
}
