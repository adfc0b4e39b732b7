// Llama-2-13b-chat: Meta's chat format for `messages`; AgentInstruct's rewrite
// behind an empty system block for a raw `prompt` (as the seed's handler).
import { Llama2ChatHandler } from "../src/index.ts";

export default class Llama2_13bChat extends Llama2ChatHandler {}
