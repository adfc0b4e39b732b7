import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { bearer, isExpired, readKeyFile } from "../../../src/client/keys.ts";
import {
  addressesFrom,
  loopbackProperties,
  MAX_REQUEST_SIZE,
  MAX_RESPONSE_SIZE,
  parseProperties,
  readProperties,
} from "../../../src/client/properties.ts";
import { kserveProperties } from "../../../src/kserve/snapshot.ts";

const ROOT = path.resolve(import.meta.dirname, "../../..");

describe("config.properties", () => {
  it("parses keys, comments and continuations as Java properties", () => {
    const props = parseProperties(
      "# c\n! c2\ninference_address=http://0.0.0.0:9080\nmanagement_address : http://127.0.0.1:9081/\nvmargs=-Xmx1g \\\n  -Dx=y\n",
    );
    expect(props.get("vmargs")).toBe("-Xmx1g -Dx=y");
    expect(addressesFrom(props)).toEqual({
      inference: "http://127.0.0.1:9080",
      management: "http://127.0.0.1:9081",
      metrics: "http://127.0.0.1:8082",
    });
  });

  it("the project's config binds loopback on 8080/8081/8082 with the model API on and token auth left on", () => {
    const props = readProperties(path.join(ROOT, "configs", "config.properties"));
    expect(addressesFrom(props)).toEqual({
      inference: "http://127.0.0.1:8080",
      management: "http://127.0.0.1:8081",
      metrics: "http://127.0.0.1:8082",
    });
    expect(props.get("enable_model_api")).toBe("true");
    expect(props.get("disable_token_authorization") ?? "false").toBe("false");
    expect(props.get("install_py_dep_per_model") ?? "false").toBe("false");
  });

  const written = {
    "configs/config.properties": () => fs.readFileSync(path.join(ROOT, "configs", "config.properties"), "utf8"),
    "loopbackProperties": () => loopbackProperties(9080),
    "kserveProperties": () => kserveProperties([]),
  };
  for (const [name, text] of Object.entries(written)) {
    it(`${name} sets the request and response limits and allows no archive URL`, () => {
      const props = parseProperties(text());
      expect(Number(props.get("max_request_size"))).toBe(MAX_REQUEST_SIZE);
      expect(Number(props.get("max_response_size"))).toBe(MAX_RESPONSE_SIZE);
      // TorchServe matches each comma-separated pattern against the whole URL; names in the model store need none.
      const patterns = props
        .get("allowed_urls")!
        .split(",")
        .map((p) => new RegExp(`^(?:${p})$`, "i"));
      for (const url of ["http://127.0.0.1:8081/models", "https://example.com/m.mar", "file:///etc/passwd", "file:///tmp/m.mar"]) {
        expect(
          patterns.some((p) => p.test(url)),
          url,
        ).toBe(false);
      }
    });
  }

  it("an extra line given to loopbackProperties overrides a limit (Java properties: the last one wins)", () => {
    expect(parseProperties(loopbackProperties(9080, ["max_request_size=1000"])).get("max_request_size")).toBe("1000");
  });
});

describe("key_file.json", () => {
  const sample = {
    management: { key: "m-key", "expiration time": "2000-01-01T00:00:00.000Z" },
    inference: { key: "i-key", "expiration time": "2999-01-01T00:00:00.000Z" },
    API: { key: "api-key" },
  };

  it("reads TorchServe's key file and tells expired keys", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keys-")), "key_file.json");
    expect(readKeyFile(file)).toBeUndefined();
    fs.writeFileSync(file, JSON.stringify(sample));
    const keys = readKeyFile(file)!;
    expect(keys.inference.key).toBe("i-key");
    expect(isExpired(keys, "management")).toBe(true);
    expect(isExpired(keys, "inference")).toBe(false);
    expect(bearer("abc")).toEqual({ Authorization: "Bearer abc" });
    expect(bearer(undefined)).toEqual({});
  });

  it("refuses a file that is not a key file", () => {
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "keys-")), "key_file.json");
    fs.writeFileSync(file, JSON.stringify({ inference: {} }));
    expect(() => readKeyFile(file)).toThrow(/not a TorchServe key file/);
  });
});
