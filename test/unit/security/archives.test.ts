// Archive safety at the edges a user meets (issue 7, security): `register`
// stages nothing from an archive with unsafe entries, and `--extra-files`
// names every kind of secret it refuses.
import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { UnsafeArchiveError } from "../../../src/archive/reader.ts";
import { secretReason } from "../../../src/archive/secrets.ts";
import { stageArchive } from "../../../src/client/model-registration.ts";
import { python, tempDir } from "../archive/helpers.ts";

function zipWith(entries: { name: string; symlink?: string }[]): string {
  const file = path.join(tempDir(), "evil.mar");
  python(
    [
      "import json, sys, zipfile",
      "with zipfile.ZipFile(sys.argv[1], 'w') as z:",
      "    z.writestr('MAR-INF/MANIFEST.json', json.dumps({'model': {'modelName': 'evil'}}))",
      "    for e in json.loads(sys.argv[2]):",
      "        info = zipfile.ZipInfo(e['name'])",
      "        if e.get('symlink'):",
      "            info.external_attr = 0o120777 << 16",
      "        z.writestr(info, e.get('symlink') or 'x')",
    ].join("\n"),
    [file, JSON.stringify(entries)],
  );
  return file;
}

describe("register refuses unsafe archives before anything is staged", () => {
  it.each([
    ["an entry that climbs out", [{ name: "../../evil.py" }]],
    ["an absolute entry", [{ name: "/tmp/evil.py" }]],
    ["a link pointing outside", [{ name: "link", symlink: "/etc/passwd" }]],
  ])("%s", async (_what, entries) => {
    const store = tempDir();
    await expect(stageArchive(zipWith(entries), store)).rejects.toBeInstanceOf(UnsafeArchiveError);
    expect(fs.readdirSync(store)).toEqual([]);
  });

  it("stages a safe archive (the refusals above are not refusing everything)", async () => {
    const store = tempDir();
    await expect(stageArchive(zipWith([{ name: "ok.py" }]), store)).resolves.toEqual({ url: "evil.mar", modelName: "evil" });
    expect(fs.readdirSync(store)).toEqual(["evil.mar"]);
  });
});

describe("--extra-files secret screening", () => {
  it.each([
    ".env",
    ".env.local",
    "key_file.json",
    ".netrc",
    ".npmrc",
    ".pypirc",
    "credentials",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    "server.pem",
    "tls.KEY",
    "client.p12",
    "store.pfx",
  ])("refuses %s by name", (name) => {
    expect(secretReason(path.join("/some/dir", name))).toMatch(/credentials|environment|private key/);
  });

  it.each(["handler_utils.py", "vocab.json", "environment.md", "keys.txt", "README.md"])("lets %s through", (name) => {
    expect(secretReason(name)).toBeUndefined();
  });
});
