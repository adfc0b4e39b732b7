// SmolLM2-135M-Instruct: `messages` through the model's own chat template
// (ChatML, from its tokenizer); a raw `prompt` goes to the model unchanged.
import { ChatTemplateHandler } from "../src/index.ts";

export default class SmolLM2_135mInstruct extends ChatTemplateHandler {}
