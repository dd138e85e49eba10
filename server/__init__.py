"""seqtune MCP server: the protocol face and process management (never imports TensorFlow)."""
