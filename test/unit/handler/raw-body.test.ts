import { describe, expect, it } from "vitest";
import { RawBody } from "../../../src/handler/raw-body.ts";
import { RequestOutcome } from "../../../src/protocol/messages.ts";

describe("RawBody", () => {
  it("carries text with a media type", () => {
    const body = new RawBody("data: hi\n\n", "text/event-stream; charset=utf-8");
    expect(RequestOutcome.parse({ ok: true, body: body.text, content_type: body.contentType })).toMatchObject({
      content_type: "text/event-stream; charset=utf-8",
    });
  });

  it.each(["", " text/plain", "text/plâin", "text/plain\r\nx-injected: 1"])(
    "refuses the content type %j, naming it (TorchServe would misframe the reply)",
    (type) => {
      expect(() => new RawBody("x", type)).toThrow(`RawBody: content type ${JSON.stringify(type)} is not a media type of printable ASCII`);
      expect(RequestOutcome.safeParse({ ok: true, body: "x", content_type: type }).success).toBe(false);
    },
  );
});
