import { ARCHIVE_FORMATS, createArchive, type ArchiveFormatOption } from "../../archive/archive.ts";
import { ArchiveInputError } from "../../config/input-error.ts";
import { UsageError, type Command } from "../command.ts";

const usage = `Usage: tsserve archive --model-name NAME --version V --handler handlers/<file>.ts -c <model-config.yaml>
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
  --strict                  refuse a config with unknown keys (exit code 2) instead of warning`;

function required(values: Record<string, unknown>, key: string, flag: string): string {
  const value = values[key];
  if (typeof value !== "string" || value === "") throw new UsageError(`${flag} is required\n\n${usage}`);
  return value;
}

const command: Command = {
  name: "archive",
  summary: "pack a TypeScript handler as a TorchServe model archive",
  usage,
  options: {
    "model-name": { type: "string" },
    version: { type: "string", short: "v" },
    handler: { type: "string" },
    "config-file": { type: "string", short: "c" },
    "requirements-file": { type: "string", short: "r" },
    "extra-files": { type: "string" },
    "export-path": { type: "string" },
    "archive-format": { type: "string", default: "default" },
    force: { type: "boolean", short: "f", default: false },
    strict: { type: "boolean", default: false },
  },
  async run({ values }) {
    const format = values["archive-format"] as string;
    if (!(ARCHIVE_FORMATS as readonly string[]).includes(format)) {
      throw new UsageError(`--archive-format must be one of ${ARCHIVE_FORMATS.join(", ")}, not "${format}"`);
    }
    const extra = values["extra-files"] as string | undefined;
    try {
      const result = await createArchive(
        {
          modelName: required(values, "model-name", "--model-name"),
          version: required(values, "version", "--version"),
          handler: required(values, "handler", "--handler"),
          configFile: required(values, "config-file", "--config-file"),
          requirementsFile: values["requirements-file"] as string | undefined,
          extraFiles: extra
            ? extra
                .split(",")
                .map((s) => s.trim())
                .filter(Boolean)
            : [],
          exportPath: values["export-path"] as string | undefined,
          archiveFormat: format as ArchiveFormatOption,
          force: values.force as boolean,
          strict: values.strict as boolean,
        },
        { log: (m) => process.stderr.write(`tsserve archive: ${m}\n`) },
      );
      for (const w of result.warnings) process.stderr.write(`tsserve archive: warning: ${w}\n`);
      process.stdout.write(`${result.path}\n`);
    } catch (error) {
      if (error instanceof ArchiveInputError) throw new UsageError(error.message);
      throw error;
    }
  },
};

export default command;
