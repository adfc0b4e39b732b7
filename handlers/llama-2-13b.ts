// Llama-2-13b (base, not chat): the raw prompt goes to the model unchanged;
// `messages` are refused (a base model has no chat format).
import { RawPromptHandler } from "../src/index.ts";

export default class Llama2_13b extends RawPromptHandler {}
