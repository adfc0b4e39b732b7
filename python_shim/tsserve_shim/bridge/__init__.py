"""The channel to the Node child: JSON-RPC over its stdin/stdout, framing, the child process,
and the bridge thread that owns them. Nothing here imports torch."""
