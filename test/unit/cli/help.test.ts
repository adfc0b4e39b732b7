// The CLI's usage text is an interface: scripts and the docs rely on its commands and flags (test/unit/docs checks them).
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

const tsserve = (...args: string[]) => spawnSync(process.execPath, ["bin/tsserve.mjs", ...args], { encoding: "utf8" });

describe("tsserve --help", () => {
  it("lists every command", () => {
    expect(execFileSync(process.execPath, ["bin/tsserve.mjs", "--help"], { encoding: "utf8" })).toMatchInlineSnapshot(`
      "Usage: tsserve <command> [options]

      Commands:
        render          print the prompts a handler builds for a request (offline, no model)
        init            scaffold a handler, its model config and its test
        bundle          bundle a TypeScript handler into one ESM file that runs with plain node
        archive         pack a TypeScript handler as a TorchServe model archive
        start           start TorchServe and wait until it answers /ping
        stop            stop TorchServe and wait for all its processes to exit
        register        register a model archive and wait for its workers
        dev             serve a handler and swap in each edit live, with the model loaded
        unregister      unregister a model
        restart-workers stop a model's workers and start them again, waiting until they are READY
        status          show TorchServe's health and the registered models
        top             a live view of the running server's models: requests/s, tokens/s, TTFT, load, errors
        logs            print one request's lines from every log, in order (--request ID)
        predict         send an inference request and print the response
        token           print TorchServe's current inference or management key
        setup           make a Python venv with TorchServe in the project (.venv)
        kserve          write a KServe storage layout (config.properties, model-store) and InferenceService

      Run \`tsserve help <command>\` (or \`tsserve <command> --help\`) for a command's options; \`tsserve --version\` for the version.
      "
    `);
  });

  it("shows the archive flags torch-model-archiver users know", () => {
    expect(tsserve("archive", "--help").stdout).toMatchInlineSnapshot(`
      "Usage: tsserve archive --model-name NAME --version V --handler handlers/<file>.ts -c <model-config.yaml>
                             [-r requirements.txt] [--extra-files a,b] [--export-path DIR]
                             [--archive-format default|zip-store|tgz|no-archive] [-f] [--strict]

      Packs a TypeScript handler as a TorchServe model archive, laid out as torch-model-archiver 0.12
      writes it. The config's handler: section is checked against the handler's schema first; a key
      that nothing reads (a typo such as quantise: or maxWorker:) is a warning, with the key it was
      probably meant to be.

      Options:
        --model-name NAME         model name (also the archive's file name)
        -v, --version V           model version
        --handler FILE            the TypeScript handler module (default export: the handler class)
        -c, --config-file FILE    model-config.yaml (TorchServe keys and the handler: section)
        -r, --requirements-file   more Python requirements, appended to the archive's requirements.txt
                                  (which always names the shim's own and Node as a wheel); TorchServe
                                  installs them per model, so the config needs "useVenv: true"
        --extra-files LIST        comma-separated files or folders packed at the archive's top level
        --export-path DIR         where to write the archive (default: the current folder; made when missing)
        --archive-format FMT      default (NAME.mar, deflate), zip-store (NAME.mar, stored),
                                  tgz (NAME.tar.gz under NAME/), no-archive (folder NAME/)
        -f, --force               overwrite existing output; pack extra files that look like secrets
        --strict                  refuse a config with unknown keys (exit code 2) instead of warning
      "
    `);
  });

  it("shows render's interface", () => {
    expect(tsserve("render", "--help").stdout).toMatchInlineSnapshot(`
      "Usage: tsserve render --handler <file.ts> --request <file.json|-> [--config <file.yaml>]

      Runs the handler's pipeline on the request against a recording fake model and
      prints {"prompts": [...]}: every prompt the handler passed to generate, in order.

      Options:
        --handler <file.ts>    handler module (its default export is the handler class)
        --request <file|->     request body as JSON (an array is one batch); - reads stdin
        --config <file.yaml>   model-config.yaml (its handler: section is checked with the
                               handler's schema; the model's tokenizer_config.json, when
                               model_path has one, supplies bos/eos/chat_template)

      Exit codes: 0 rendered; 2 a request was refused, or bad usage; 1 the handler failed.
      "
    `);
  });

  it("refuses an unknown command with exit code 2 and the usage", () => {
    const result = tsserve("serve");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('unknown command "serve"');
    expect(result.stderr).toContain("Usage: tsserve <command>");
  });

  it("refuses an unknown flag with exit code 2 and the command's usage", () => {
    const result = tsserve("bundle", "--handlr", "x.ts");
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("Usage: tsserve bundle");
  });

  it("prints the package version for --version, -V and version", () => {
    const { version } = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    for (const flag of ["--version", "-V", "version"]) {
      const result = tsserve(flag);
      expect(result.status).toBe(0);
      expect(result.stdout).toBe(`${version}\n`);
    }
  });

  it("help CMD prints that command's usage, as CMD --help does; an unknown CMD exits 2", () => {
    const help = tsserve("help", "archive");
    expect(help.status).toBe(0);
    expect(help.stdout).toBe(tsserve("archive", "--help").stdout);
    expect(help.stdout).toMatch(/^Usage: tsserve archive /);
    const unknown = tsserve("help", "archve");
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^tsserve help: unknown command "archve"/);
  });
});
