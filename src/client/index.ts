export { TorchServeClient, TorchServeError, type ModelDescription, type PredictResult, type RegisterOptions } from "./http.ts";
export { readKeyFile, isExpired, type KeyFile, type KeyKind } from "./keys.ts";
export { workPaths, projectRoot, PROJECT_ROOT, type WorkPaths } from "./paths.ts";
export { findTorchServe, TorchServeNotFoundError, type TorchServeLocation } from "./torchserve-path.ts";
export { parseProperties, readProperties, addressesFrom, type ServerAddresses } from "./properties.ts";
export {
  connect,
  readState,
  registerWatched,
  runningServer,
  serverProcesses,
  stageArchive,
  startServer,
  stopServer,
  ServerError,
  WorkerStartError,
  type ServerState,
} from "./torchserve-process.ts";
