// Vicuna-13b: FastChat's vicuna_v1.1 format for `messages`; AgentInstruct's
// rewrite (and nothing more) for a raw `prompt` (as the seed's handler).
import { VicunaHandler } from "../src/index.ts";

export default class Vicuna13b extends VicunaHandler {}
