// Llama-2-70b-chat: Meta's chat format for `messages`; AgentInstruct's rewrite
// behind an empty system block for a raw `prompt` (as the seed's handler).
import { Llama2ChatHandler } from "../src/index.ts";

export default class Llama2_70bChat extends Llama2ChatHandler {}
