/** JSON Schema of the completion request as clients send it (the zod definition's input side). */
import { z } from "zod";
import { CompletionRequestInput } from "./request.ts";

export function completionRequestJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(CompletionRequestInput, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}
