import { describe, expect, it } from "vitest";
import { UsageError } from "../../../src/cli/command.ts";
import { parsePortBase } from "../../../src/cli/commands/start.ts";
import { addressesFrom, parseProperties, withPortBase } from "../../../src/client/properties.ts";

describe("tsserve start --port-base", () => {
  it("moves every address, gRPC's too, and keeps every other setting", () => {
    const text = [
      "inference_address=http://127.0.0.1:8080",
      "management_address: http://127.0.0.1:8081",
      "grpc_inference_port=7070",
      "enable_model_api=true",
      "# a comment",
    ].join("\n");
    const props = parseProperties(withPortBase(text, 28080));
    expect(addressesFrom(props)).toEqual({
      inference: "http://127.0.0.1:28080",
      management: "http://127.0.0.1:28081",
      metrics: "http://127.0.0.1:28082",
    });
    expect(props.get("grpc_inference_port")).toBe("28090");
    expect(props.get("grpc_management_port")).toBe("28091");
    expect(props.get("enable_model_api")).toBe("true");
    expect(withPortBase(text, 28080).match(/inference_address/g)).toHaveLength(1);
  });

  it("takes a port from 1024 that leaves room for +11, and refuses anything else naming the flag", () => {
    expect(parsePortBase(undefined)).toBeUndefined();
    expect(parsePortBase("28080")).toBe(28080);
    for (const bad of ["80", "65530", "abc", "8080.5"]) expect(() => parsePortBase(bad)).toThrow(UsageError);
    expect(() => parsePortBase("abc")).toThrow(/--port-base must be an integer from 1024 to 65524, not "abc"/);
  });
});
