/**
 * The Node side of the bridge: answers the shim's initialize / handle /
 * shutdown, runs the handler's pipeline, and lends it a model that calls back
 * into the shim.
 */
import { Connection, type ByteSink, type ByteSource } from "../protocol/connection.ts";
import { ErrorCode, RpcError } from "../protocol/errors.ts";
import { PROTOCOL_VERSION, type IncomingRequest } from "../protocol/messages.ts";
import { GenerationDelta, Handle, Initialize, Ping, Shutdown, StreamChunk } from "../protocol/methods.ts";
import { parseModelConfig } from "../config/model-config.ts";
import { describeIssues } from "../handler/validate.ts";
import type { AnyHandler, HandlerClass } from "../handler/handler-class.ts";
import type { HandlerContext } from "../handler/context.ts";
import { RemoteModel } from "./remote-model.ts";
import { runBatch } from "./pipeline.ts";
import { encodeBody } from "./outcome.ts";
import { describeThrown, mappedStack } from "../handler/error-place.ts";
import type { Inspector } from "../inspector/journal-client.ts";

interface RuntimeOptions {
  input: ByteSource;
  output: ByteSink;
  log?: (line: string) => void;
  /** tsserve dev's inspector, told about each request (absent in production: nothing is recorded). */
  inspector?: Inspector;
}

interface Runtime {
  connection: Connection;
  /** Resolves with the exit code the process should use: 0 after shutdown, 1 if the channel closed first. */
  closed: Promise<number>;
}

export function startRuntime(Handler: HandlerClass, options: RuntimeOptions): Runtime {
  const log = options.log ?? ((line: string) => process.stderr.write(`[tsserve] ${line}\n`));
  // The shim's answers to generate/tokenize/detokenize are trusted (its tests check them
  // against the same schemas); validating a large logprobs result would cost more than the pipe.
  const connection = new Connection(options.input, options.output, { onNoise: (d) => log(`protocol: ${d}`), validate: "params" });
  const handler: AnyHandler = new Handler();
  let ctx: HandlerContext<unknown> | undefined;
  let model: RemoteModel | undefined;
  let shutdownRequested = false;

  connection.onRequest(Initialize, async (params, { signal }) => {
    if (params.protocol_version !== PROTOCOL_VERSION) {
      throw new RpcError(
        ErrorCode.ProtocolVersionMismatch,
        `protocol version mismatch: the shim speaks ${params.protocol_version}, this handler bundle speaks ${PROTOCOL_VERSION}; rebuild the archive with the same tsserve version`,
      );
    }
    const config = parseModelConfig(params.model_config, handler.configSchema);
    if (!config.success) {
      throw new RpcError(ErrorCode.InvalidParams, `model config: ${describeIssues(config.error).message}`);
    }
    model = new RemoteModel(connection, params.model_info);
    ctx = {
      modelName: params.model_name,
      modelDir: params.model_dir,
      gpuId: params.gpu_id,
      batchSize: params.batch_size,
      config: config.data,
      model,
    };
    // A warm-up in initialize may call ctx.model (the shim serves it during the handshake).
    await handler.initialize({ ...ctx, signal });
    options.inspector?.hello(Handler.name, handler);
    return { protocol_version: PROTOCOL_VERSION, handler: Handler.name };
  });

  connection.onRequest(Handle, async (params, { signal }) => {
    if (!ctx) throw new RpcError(ErrorCode.NotInitialized, "handle before initialize");
    const stream = (requestIndex: number, body: unknown) =>
      connection.sendNotification(StreamChunk, { batch_id: params.batch_id, request_index: requestIndex, ...encodeBody(body) });
    // The shim cancels the handle (a deadline, a client gone): the stages see `signal`, and ctx.model's calls are cancelled with it.
    const batchModel = model!.forBatch(params.batch_id, signal);
    const onThrown = (error: Error, indices: number[]) =>
      log(`${requestTag(params.requests, indices)}handler error: ${describeThrown(error)}\n${mappedStack(error)}`);
    const journal = options.inspector?.begin(params.batch_id, params.requests);
    if (!journal)
      return { responses: await runBatch(handler, { ...ctx, model: batchModel, signal }, params.requests, { stream, onThrown }) };
    const batchCtx = { ...ctx, model: journal.model(batchModel), signal };
    const responses = await runBatch(handler, batchCtx, params.requests, { stream, onThrown, onStage: journal.onStage });
    journal.finish(responses);
    return { responses };
  });

  connection.onNotification(GenerationDelta, (delta) => model?.deliverDelta(delta));

  connection.onRequest(Ping, ({ payload }) => ({ payload }));

  connection.onRequest(Shutdown, () => {
    shutdownRequested = true;
    return {};
  });

  const closed = new Promise<number>((resolve) => connection.onClose(() => resolve(shutdownRequested ? 0 : 1)));
  return { connection, closed };
}

/** `[request ID] ` for a log line about these requests of a batch (their trace ids, as the shim sent them), or "". */
export function requestTag(requests: readonly IncomingRequest[], indices: readonly number[]): string {
  const ids = [...new Set(indices.map((index) => requests[index]?.request_id).filter((id) => id !== undefined))];
  return ids.length > 0 ? `[request ${ids.join(",")}] ` : "";
}
